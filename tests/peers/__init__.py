"""Real peers for interop tests: Kamailio (TLS registrar and proxy), headless linphonec, and
the private network namespace they run in. See netns.py for why and how."""
