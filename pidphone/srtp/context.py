"""One direction of an SRTP/SRTCP session (RFC 3711 §3, §4) on `cryptography` primitives.

The per-packet path is written for speed (a Raspberry Pi Zero 2 runs it 50 times a second each
way): AES-CM keystream is one AES-ECB call over all counter blocks of a packet (§4.1.1: block j
is IV + j, and the IV's low 16 bits are zero, so the blocks are the IV's top 14 bytes joined
with the 2-byte counters),
the payload is XOR'ed as one big integer, and HMAC-SHA1 starts from a copy of a pre-keyed object.

One replay window (`ReplayWindow.replayed` before the tag is checked, `accept` after) and one
constant-time tag comparison (`_tag_ok`) serve SRTP and SRTCP alike. The SRTCP tag length may
follow the peer (4 bytes under a 32-bit profile, as Linphone sends) but the stream state does
not change with it: one SRTCP index and one replay window per SSRC, whatever the tag length, so
a 4-byte copy of an accepted packet is a replay and the index never restarts under the same key.
"""

from __future__ import annotations

import hmac
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pidphone.errors import LocalProtocolError, ParseError
from pidphone.srtp.kdf import SessionKeys, derive_session_keys
from pidphone.srtp.profiles import SALT_LEN, SrtpProfile, get_profile

RTP_HEADER_LEN = 12
RTCP_HEADER_LEN = 8
SRTCP_INDEX_LEN = 4
MAX_SRTCP_INDEX = 0x7FFFFFFF
MIN_REPLAY_WINDOW = 64
SRTCP_E_FLAG = 0x80000000
# Bound once, so the per-packet path does no attribute lookups for them.
_seq_ssrc = struct.Struct("!H4xI").unpack_from
_from_bytes = int.from_bytes
_compare_digest = hmac.compare_digest


class SrtpError(ParseError):
    """A datagram this context refuses: too short, failed authentication, or a replay.

    It is a `ParseError` (so a `ProtocolError`) because, like any malformed datagram, the
    caller drops it and counts it; `reason` ("short", "auth", "replay", "exhausted") says
    which counter to bump.
    """

    def __init__(self, reason: str, msg: str) -> None:
        super().__init__(msg)
        self.reason = reason


class _Layout:
    """For one payload length: the pieces that turn an IV into its counter blocks.

    `prefix.join(counters)`, with `prefix` the IV's top 14 bytes, is the IV repeated once per
    block, block j carrying j in its low 16 bits (the tuple starts with b"" so the prefix comes
    first); `shift` drops the keystream bits past the payload.
    """

    __slots__ = ("counters", "shift")

    def __init__(self, length: int) -> None:
        blocks = (length + 15) >> 4
        self.shift = ((blocks << 4) - length) << 3
        self.counters = (b"", *(j.to_bytes(2, "big") for j in range(blocks)))


_CACHED_LENGTH = 2048
"""Layouts are kept for payloads up to 2 KiB, which covers every audio packet."""
_LAYOUTS: dict[int, _Layout] = {}


def _layout(length: int) -> _Layout:
    lay = _Layout(length)
    if length <= _CACHED_LENGTH:
        _LAYOUTS[length] = lay
    return lay


class _Crypto:
    """Session keys of one kind (SRTP or SRTCP), ready for per-packet use."""

    __slots__ = ("ecb_update", "mac", "salt", "tag_len")

    def __init__(self, keys: SessionKeys, tag_len: int) -> None:
        ecb = Cipher(algorithms.AES(keys.encryption), modes.ECB()).encryptor()  # noqa: S305
        self.ecb_update = ecb.update
        self.mac = chmac.HMAC(keys.auth, hashes.SHA1())  # noqa: S303
        self.salt = int.from_bytes(keys.salt, "big")
        self.tag_len = tag_len

    def xor(self, iv: int, data: bytes) -> bytes:
        """AES-CM (§4.1.1): data XOR the keystream that starts at counter block `iv`."""
        n = len(data)
        if not n:
            return b""
        lay = _LAYOUTS.get(n) or _layout(n)
        stream = self.ecb_update((iv >> 16).to_bytes(14, "big").join(lay.counters))
        return (
            int.from_bytes(data, "big") ^ (int.from_bytes(stream, "big") >> lay.shift)
        ).to_bytes(n, "big")


class ReplayWindow:
    """One SSRC's replay state (§3.3.2): the highest index accepted and the `size` before it.

    Bit k of `seen` set means index `highest - k` was received and authenticated. `replayed`
    runs before the tag is checked, `accept` once it has: the one replay window of SRTP and
    SRTCP here and of the AES-GCM context (gcm.py).
    """

    __slots__ = ("highest", "mask", "seen", "size")

    def __init__(self, highest: int, size: int) -> None:
        self.highest = highest
        self.seen = 0
        self.size = size
        self.mask = (1 << size) - 1

    def replayed(self, index: int) -> bool:
        """`index` was accepted already, or is too old to tell (checked before the tag)."""
        delta = index - self.highest
        return delta <= 0 and (index < 0 or -delta >= self.size or (self.seen >> -delta) & 1 == 1)

    def accept(self, index: int) -> None:
        """Record `index`, whose packet authenticated."""
        delta = index - self.highest
        if delta > 0:
            self.highest = index
            self.seen = 1 if delta >= self.size else ((self.seen << delta) | 1) & self.mask
        else:
            self.seen |= 1 << -delta


class _CounterStream(ReplayWindow):
    """A replay window with its SSRC's part of the AES-CM IV."""

    __slots__ = ("iv_prefix",)

    def __init__(self, ssrc: int, salt: int, highest: int, window: int) -> None:
        super().__init__(highest, window)
        self.iv_prefix = salt ^ (ssrc << 48)
        """The IV (§4.1.1) shifted right by 16 bits, before the packet index is XOR'ed in."""


def estimate_index(highest: int, seq: int) -> int:
    """RFC 3711 Appendix A: the packet index within 2^15 of the highest one seen, from a
    16-bit sequence number (protect and unprotect below inline it)."""
    index = (highest & ~0xFFFF) | seq
    delta = index - highest
    if delta > 0x8000:
        index -= 0x10000
    elif delta < -0x8000:
        index += 0x10000
    return index


def _tag_ok(crypto: _Crypto, authenticated: bytes, tag: bytes) -> bool:
    """The one tag check of SRTP and SRTCP: HMAC-SHA1, truncated, compared in constant time."""
    mac = crypto.mac.copy()
    mac.update(authenticated)
    return _compare_digest(mac.finalize()[: len(tag)], tag)


def rtp_header_len(packet: bytes, end: int) -> int:
    """Length of the RTP header: fixed part, CSRC list and header extension (RFC 3550 §5.3.1)."""
    b0 = packet[0]
    hlen = RTP_HEADER_LEN + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if end < hlen + 4:
            raise SrtpError("short", "RTP header extension runs past the packet")
        hlen += 4 + ((packet[hlen + 2] << 8 | packet[hlen + 3]) << 2)
    if end < hlen:
        raise SrtpError("short", "RTP header runs past the packet")
    return hlen


class SrtpContext:
    """Protects or unprotects ONE direction of RTP and RTCP under one master key and salt.

    Keep one context for sending and another for receiving. State (rollover counter, replay
    window, SRTCP index) is per SSRC, created on the first packet of each SSRC (on receive,
    only once that packet has authenticated). Not thread-safe: one thread per context.
    `srtcp_tag_len` fixes the SRTCP tag at 10 or 4 bytes (4: peers that use the SRTP tag
    length for SRTCP too; see `pidphone.srtp.profiles`). None, under a 32-bit profile: 10 is
    sent, and on receive 10 is tried, then 4, until one authenticates; that one is kept
    (`srtcp_tag_len` tells which, `use_srtcp_tag_len` makes a send context follow).
    """

    def __init__(
        self,
        profile: str,
        master_key: bytes,
        master_salt: bytes,
        *,
        replay_window: int = 128,
        srtcp_tag_len: int | None = None,
    ) -> None:
        prof: SrtpProfile = get_profile(profile)
        if len(master_key) != prof.key_len:
            raise LocalProtocolError(
                f"{profile} needs a {prof.key_len}-byte master key, got {len(master_key)} bytes"
            )
        if len(master_salt) != SALT_LEN:
            raise LocalProtocolError(
                f"SRTP needs a {SALT_LEN}-byte master salt, got {len(master_salt)} bytes"
            )
        if replay_window < MIN_REPLAY_WINDOW:
            raise LocalProtocolError(
                f"replay window must be at least {MIN_REPLAY_WINDOW} packets (RFC 3711 §3.3.2)"
            )
        if srtcp_tag_len not in (None, 4, 10):
            raise LocalProtocolError("srtcp_tag_len must be 4 or 10 bytes")
        self.profile = prof.name
        self._window = replay_window
        self._short_tag_ok = prof.srtp_tag_len == 4
        self._rtp = _Crypto(
            derive_session_keys(master_key, master_salt, rtcp=False), prof.srtp_tag_len
        )
        self._rtcp = _Crypto(
            derive_session_keys(master_key, master_salt, rtcp=True),
            prof.srtcp_tag_len if srtcp_tag_len is None else srtcp_tag_len,
        )
        self._rtcp_tag_lens: tuple[int, ...] = (self._rtcp.tag_len,)
        """SRTCP tag lengths tried on receive, in order, until one authenticates."""
        if srtcp_tag_len is None and self._short_tag_ok and self._rtcp.tag_len != 4:
            self._rtcp_tag_lens = (self._rtcp.tag_len, 4)
        self._rtp_streams: dict[int, _CounterStream] = {}
        self._rtcp_streams: dict[int, _CounterStream] = {}

    def __repr__(self) -> str:
        return f"SrtpContext({self.profile!r}, ssrcs={sorted(self._rtp_streams)})"

    @property
    def srtcp_tag_len(self) -> int:
        """The SRTCP tag length in use: sent, and received once one has authenticated."""
        return self._rtcp.tag_len

    def use_srtcp_tag_len(self, tag_len: int) -> None:
        """Send SRTCP with `tag_len`-byte tags from now on (to follow what the peer uses),
        keeping the SRTCP index: no index, hence no keystream, is ever used twice."""
        if tag_len not in self._rtcp_tag_lens and not (tag_len == 4 and self._short_tag_ok):
            raise LocalProtocolError(f"{self.profile} cannot carry {tag_len}-byte SRTCP tags")
        self._rtcp.tag_len = tag_len
        self._rtcp_tag_lens = (tag_len,)

    def roc(self, ssrc: int) -> int:
        """The rollover counter this context holds for `ssrc` (0 if it has seen none)."""
        stream = self._rtp_streams.get(ssrc)
        return 0 if stream is None else stream.highest >> 16

    # -- SRTP (§3.3) ------------------------------------------------------------------------

    # protect() and unprotect() inline estimate_index, the plain 12-byte header case and the
    # keystream of _Crypto.xor: each call saved is a measurable share of the packet budget.

    def protect(self, rtp: bytes) -> bytes:
        """Encrypt the payload of one RTP packet and append the authentication tag."""
        n = len(rtp)
        if n < RTP_HEADER_LEN:
            raise SrtpError("short", f"RTP packet of {n} bytes is shorter than its header")
        hlen = rtp_header_len(rtp, n) if rtp[0] & 0x1F else RTP_HEADER_LEN
        seq, ssrc = _seq_ssrc(rtp, 2)
        crypto = self._rtp
        stream = self._rtp_streams.get(ssrc)
        if stream is None:
            stream = self._rtp_streams[ssrc] = _CounterStream(ssrc, crypto.salt, seq, self._window)
        highest = stream.highest
        index = (highest & ~0xFFFF) | seq
        delta = index - highest
        if delta > 0x8000:
            index -= 0x10000
        elif delta < -0x8000:
            index += 0x10000
        if index < 0:  # a sender has no "before its first packet": stay in ROC 0
            index += 0x10000
        if index > highest:
            stream.highest = index
        size = n - hlen
        if size:
            lay = _LAYOUTS.get(size) or _layout(size)
            prefix = (stream.iv_prefix ^ index).to_bytes(14, "big")
            ks = crypto.ecb_update(prefix.join(lay.counters))
            # The keystream is only `size` bytes long, so XOR'ing the whole packet leaves the
            # header as it is and saves splitting and joining.
            m = (_from_bytes(rtp, "big") ^ (_from_bytes(ks, "big") >> lay.shift)).to_bytes(n, "big")
        else:
            m = bytes(rtp)
        mac = crypto.mac.copy()
        mac.update(m + (index >> 16).to_bytes(4, "big"))
        return m + mac.finalize()[: crypto.tag_len]

    def unprotect(self, srtp: bytes) -> bytes:
        """Authenticate, replay-check and decrypt one SRTP packet; return the RTP packet."""
        crypto = self._rtp
        end = len(srtp) - crypto.tag_len
        if end < RTP_HEADER_LEN:
            raise SrtpError("short", f"SRTP packet of {len(srtp)} bytes is too short")
        hlen = rtp_header_len(srtp, end) if srtp[0] & 0x1F else RTP_HEADER_LEN
        seq, ssrc = _seq_ssrc(srtp, 2)
        stream = self._rtp_streams.get(ssrc)
        if stream is None:
            index = seq
        else:
            highest = stream.highest
            index = (highest & ~0xFFFF) | seq
            delta = index - highest
            if delta > 0x8000:
                index -= 0x10000
            elif delta < -0x8000:
                index += 0x10000
            if stream.replayed(index):
                raise SrtpError("replay", f"SRTP packet index {index} replayed or too old")
        m = srtp[:end]
        if not _tag_ok(crypto, m + (index >> 16).to_bytes(4, "big"), srtp[end:]):
            raise SrtpError("auth", "SRTP authentication failed")
        if stream is None:
            stream = self._rtp_streams[ssrc] = _CounterStream(
                ssrc, crypto.salt, index, self._window
            )
        stream.accept(index)
        size = end - hlen
        if not size:
            return m if type(m) is bytes else bytes(m)
        lay = _LAYOUTS.get(size) or _layout(size)
        ks = crypto.ecb_update((stream.iv_prefix ^ index).to_bytes(14, "big").join(lay.counters))
        return (_from_bytes(m, "big") ^ (_from_bytes(ks, "big") >> lay.shift)).to_bytes(end, "big")

    # -- SRTCP (§3.4) -----------------------------------------------------------------------

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """Encrypt a (compound) RTCP packet, append E-flag + SRTCP index and the tag.

        The index is counted per SSRC of the first packet and, as in libsrtp, the first one
        sent is 1.
        """
        n = len(rtcp)
        if n < RTCP_HEADER_LEN:
            raise SrtpError("short", f"RTCP packet of {n} bytes is shorter than its header")
        ssrc = int.from_bytes(rtcp[4:8], "big")
        crypto = self._rtcp
        stream = self._rtcp_streams.get(ssrc)
        if stream is None:
            stream = self._rtcp_streams[ssrc] = _CounterStream(ssrc, crypto.salt, 0, self._window)
        index = stream.highest + 1
        if index > MAX_SRTCP_INDEX:
            raise SrtpError("exhausted", "SRTCP index exhausted: the master key must change")
        stream.highest = index
        m = (
            rtcp[:RTCP_HEADER_LEN]
            + crypto.xor((stream.iv_prefix ^ index) << 16, rtcp[RTCP_HEADER_LEN:])
            + (SRTCP_E_FLAG | index).to_bytes(4, "big")
        )
        mac = crypto.mac.copy()
        mac.update(m)
        return m + mac.finalize()[: crypto.tag_len]

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """Authenticate, replay-check and (if the E flag says so) decrypt one SRTCP packet.

        While the tag length is open (see the class docstring) each candidate length is tried
        against the one stream state; the first that authenticates is kept for good."""
        crypto = self._rtcp
        ssrc = _from_bytes(srtcp[4:8], "big")
        stream = self._rtcp_streams.get(ssrc)
        error = SrtpError("short", f"SRTCP packet of {len(srtcp)} bytes is too short")
        for tag_len in self._rtcp_tag_lens:
            end = len(srtcp) - tag_len
            body_end = end - SRTCP_INDEX_LEN
            if body_end < RTCP_HEADER_LEN:
                continue
            e_index = _from_bytes(srtcp[body_end:end], "big")
            index = e_index & MAX_SRTCP_INDEX
            if stream is not None and stream.replayed(index):
                error = SrtpError("replay", f"SRTCP index {index} replayed or too old")
                continue
            if not _tag_ok(crypto, srtcp[:end], srtcp[end:]):
                error = SrtpError("auth", "SRTCP authentication failed")
                continue
            if len(self._rtcp_tag_lens) > 1:
                crypto.tag_len = tag_len
                self._rtcp_tag_lens = (tag_len,)
            if stream is None:
                stream = self._rtcp_streams[ssrc] = _CounterStream(
                    ssrc, crypto.salt, index, self._window
                )
            stream.accept(index)
            body = srtcp[RTCP_HEADER_LEN:body_end]
            if e_index & SRTCP_E_FLAG:
                body = crypto.xor((stream.iv_prefix ^ index) << 16, body)
            return srtcp[:RTCP_HEADER_LEN] + body
        raise error
