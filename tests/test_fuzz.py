"""Every entry point that takes bytes from outside, fuzzed in CI: random bytes and mutated
seeds (real captures from tests/data and whole exchanges between our own objects) may only
raise the error the phone catches for them (fuzz/targets.py says which, and what else each
target checks). `python -m fuzz` runs the same targets for millions of inputs."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import seeds
from fuzz.targets import TARGETS, Target


@st.composite
def mutated(
    draw: st.DrawFn, corpus: tuple[bytes, ...], tokens: tuple[bytes, ...], max_len: int
) -> bytes:
    """A seed damaged a few times: bytes set, tokens inserted, runs deleted, duplicated or
    cut, or spliced with another seed."""
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 5))
        if op == 0 and data:
            data[at % len(data)] = draw(st.integers(0, 255))
        elif op == 1:
            data[at:at] = draw(st.sampled_from(tokens))
        elif op == 2:
            del data[at : at + draw(st.integers(1, 16))]
        elif op == 3:
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 4))
        elif op == 4:
            del data[at:]
        else:
            other = draw(st.sampled_from(corpus))
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data[:max_len])


def check(target: Target, data: bytes) -> None:
    with contextlib.suppress(*target.expected):
        target.run(data)


EXAMPLES = {"zrtp_session": 150, "zrtp_pq_session": 100, "sip_agent": 200, "config": 200}
"""Fewer for the targets that run a whole exchange or file per input (about 2 ms each)."""


@pytest.mark.parametrize("name", list(TARGETS))
def test_only_the_expected_error_escapes(name: str) -> None:
    target = TARGETS[name]
    corpus = tuple(target.seeds())
    tokens = (*seeds.TOKENS, *target.dictionary)
    inputs = st.one_of(
        st.binary(max_size=min(target.max_len, 600)), mutated(corpus, tokens, target.max_len)
    )

    @settings(
        max_examples=EXAMPLES.get(name, 300),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(inputs)
    def run(data: bytes) -> None:
        check(target, data)

    run()


@pytest.mark.parametrize("name", list(TARGETS))
def test_the_seeds_reach_past_the_parser(name: str) -> None:
    """Seeds that the parser refused would fuzz nothing but its first check."""
    target = TARGETS[name]
    corpus = target.seeds()
    accepted = 0
    for seed in corpus:
        try:
            target.run(seed)
            accepted += 1
        except target.expected:
            pass
    assert len(corpus) >= 2 and accepted >= len(corpus) // 2


def test_the_cached_key_arithmetic_gives_the_same_keys_and_errors() -> None:
    """The fuzzing process caches pidphone.zrtp.kem's scalar multiplications: a post-quantum
    exchange gives the same public key, ciphertext and secret with and without the cache, and a
    bad value is still refused every time (an error is never cached as a result)."""
    from fuzz.targets import memoize_pure_crypto
    from pidphone.zrtp import kem

    def exchange() -> tuple[bytes, bytes, bytes, bytes]:
        pair = kem.generate("X3M3", "sha512", seeds.seeded(7))
        secret, ciphertext = kem.encapsulate(
            "X3M3", pair.public, "sha512", seeds.seeded(8), lambda _v, _k: (bytes(32), bytes(1568))
        )
        return pair.public, ciphertext, secret, pair.decapsulate(ciphertext)

    def refused() -> int:
        count = 0
        for _ in range(2):
            with contextlib.suppress(kem.BadKemValueError):
                kem.ecdh_kem_decapsulate("X448", bytes(range(56)), bytes(56), "sha512")
                continue
            count += 1
        return count

    plain = exchange()
    undo = memoize_pure_crypto()
    try:
        assert exchange() == plain
        assert exchange() == plain
        assert refused() == 2
    finally:
        undo()
    assert kem._ecdh is not None and not hasattr(kem._ecdh, "cache_info")
