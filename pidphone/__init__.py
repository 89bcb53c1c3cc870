"""pidphone: the software of a secure Raspberry Pi desk phone (SIP over TLS, ZRTP, SRTP)."""

__version__ = "0.1.0"
