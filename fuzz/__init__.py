"""Fuzzing pidphone's parsers and protocol objects: the targets, their seeds and a runner.

`targets.TARGETS` names one target per entry point that takes bytes from the network or the
boot partition; tests/test_fuzz.py runs each under hypothesis in CI (bounded), and
`python -m fuzz` runs them by hand for millions of inputs (coverage-guided with atheris,
from the `fuzz` extra) and reports the inputs run and the slowest input of each.
"""
