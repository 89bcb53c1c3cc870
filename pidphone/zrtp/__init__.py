"""ZRTP (RFC 6189): media-path key agreement for SRTP, with a short authentication string.

Pure and sans-I/O: packets and `now` in; packets, a timer deadline and typed events out.

- `ZrtpSession`: one stream's exchange (session.py); `ZrtpConfig` its preferences and timers.
  The exchange is a state table (state.py) with a handler module per RFC section: discovery
  and hello (§4.1), commit (§4.2), dhpart and agreement (§4.4.1), multistream (§4.4.3), keys
  (§4.5), confirm (§4.6), retained (§4.6.1, §7), termination (§4.7, §5.9); exchange.py holds
  what they share, framing.py the packet layer.
- Algorithm names, one list per kind (`algorithms.HASHES`, `CIPHERS`, `AUTH_TAGS`,
  `KEY_AGREEMENTS`, `SAS_TYPES`), and the negotiation.
- Events: `PeerHelloReceived`, `SrtpKeysReady`, `Secured`, `CacheMismatch`, `ZrtpFailed`,
  `SecurityLost`, `GoClearRefused` (events.py).
- `ZidCache` protocol, `CacheEntry`, `MemoryZidCache` (cache.py); the file-backed cache is
  `pidphone.drivers.zid_cache.FileZidCache`.
- Wire format: `parse_packet`, `parse_message`, one dataclass per §5 message (messages.py).
- Primitives: `kdf` (§4.5.1), `render_sas` (§5.1.6), `crc32c`.
"""

from __future__ import annotations

from pidphone.zrtp.cache import CacheEntry, MemoryZidCache, ZidCache
from pidphone.zrtp.config import ZrtpConfig
from pidphone.zrtp.crc import crc32c
from pidphone.zrtp.events import (
    CacheMismatch,
    GoClearRefused,
    PeerHelloReceived,
    Secured,
    SecurityLost,
    SrtpKeysReady,
    ZrtpEvent,
    ZrtpFailed,
)
from pidphone.zrtp.kdf import kdf
from pidphone.zrtp.messages import (
    ClearAck,
    Commit,
    Conf2Ack,
    Confirm1,
    Confirm2,
    ConfirmPlaintext,
    DHPart1,
    DHPart2,
    Error,
    ErrorAck,
    GoClear,
    Hello,
    HelloAck,
    Message,
    Ping,
    PingAck,
    RelayAck,
    SasRelay,
    ZrtpPacket,
    ZrtpParseError,
    parse_message,
    parse_packet,
)
from pidphone.zrtp.sas import render_sas
from pidphone.zrtp.session import ZrtpSession

__all__ = [
    "CacheEntry",
    "CacheMismatch",
    "ClearAck",
    "Commit",
    "Conf2Ack",
    "Confirm1",
    "Confirm2",
    "ConfirmPlaintext",
    "DHPart1",
    "DHPart2",
    "Error",
    "ErrorAck",
    "GoClear",
    "GoClearRefused",
    "Hello",
    "HelloAck",
    "MemoryZidCache",
    "Message",
    "PeerHelloReceived",
    "Ping",
    "PingAck",
    "RelayAck",
    "SasRelay",
    "Secured",
    "SecurityLost",
    "SrtpKeysReady",
    "ZidCache",
    "ZrtpConfig",
    "ZrtpEvent",
    "ZrtpFailed",
    "ZrtpPacket",
    "ZrtpParseError",
    "ZrtpSession",
    "crc32c",
    "kdf",
    "parse_message",
    "parse_packet",
    "render_sas",
]
