"""ZRTP preferences and timers (RFC 6189 §4.1.2, §5.1, §6)."""

from __future__ import annotations

from dataclasses import dataclass

from pidphone.errors import LocalProtocolError
from pidphone.zrtp.algorithms import SUPPORTED
from pidphone.zrtp.fragment import DEFAULT_MTU, MIN_MTU
from pidphone.zrtp.messages import MAX_ALGORITHMS, MAX_PACKET_LEN


@dataclass(frozen=True)
class ZrtpConfig:
    """What we offer in Hello, most preferred first, and the §6 timers (seconds)."""

    hashes: tuple[str, ...] = ("S256", "S384")
    """Hash types (§5.1.2)."""
    ciphers: tuple[str, ...] = ("AES1", "AES3")
    """Cipher types (§5.1.3)."""
    auth_tags: tuple[str, ...] = ("HS80", "HS32")
    """SRTP auth tag types (§5.1.4)."""
    key_agreements: tuple[str, ...] = ("X255", "EC25", "DH3k", "X448", "EC38", "DH2k", "Mult")
    """Key agreement types (§5.1.5); at most 7 fit in a Hello."""
    sas_types: tuple[str, ...] = ("B32", "B256")
    """SAS rendering schemes (§5.1.6)."""
    client_id: str = "pidphone 0.1"
    """Up to 16 ASCII characters, padded with spaces in Hello."""
    passive: bool = False
    """A passive endpoint never sends Commit (the P flag of §5.2)."""
    hello_interval: float = 0.05
    """T1: first Hello retransmission interval; doubles up to `hello_interval_cap`."""
    hello_interval_cap: float = 0.2
    hello_retransmissions: int = 20
    hello_extension: float = 12.0
    """Once the peer is known to speak ZRTP, keep sending Hello for this long from start()."""
    retransmit_interval: float = 0.15
    """T2: first retransmission interval of the other messages; doubles up to the cap."""
    retransmit_interval_cap: float = 1.2
    retransmissions: int = 10
    responder_timeout: float = 10.0
    """A responder that hears nothing this long sends Error 0xB0 (§6)."""
    mtu: int = DEFAULT_MTU
    """Longest ZRTP packet sent (bytes): a longer message (a post-quantum Commit or DHPart1)
    goes in fragments of at most this size, as bzrtp does (its default, 1452)."""

    def __post_init__(self) -> None:
        for kind in ("hashes", "ciphers", "auth_tags", "key_agreements", "sas_types"):
            names: tuple[str, ...] = getattr(self, kind)
            unknown = [name for name in names if name.ljust(4) not in SUPPORTED[kind]]
            if unknown or not names or len(names) > MAX_ALGORITHMS or len(set(names)) != len(names):
                allowed = ", ".join(sorted(name.strip() for name in SUPPORTED[kind]))
                raise LocalProtocolError(
                    f"ZrtpConfig.{kind}={names!r}: 1 to {MAX_ALGORITHMS} distinct of {allowed}"
                )
        if not MIN_MTU <= self.mtu <= MAX_PACKET_LEN:
            raise LocalProtocolError(f"ZrtpConfig.mtu={self.mtu}: {MIN_MTU} to {MAX_PACKET_LEN}")
        if len(self.client_id) > 16 or not self.client_id.isascii():
            raise LocalProtocolError("ZrtpConfig.client_id: at most 16 ASCII characters")
