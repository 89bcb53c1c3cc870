"""SRTP and SRTCP with AEAD AES-GCM (RFC 7714), ZRTP's "GCM " auth tag, on `cryptography`.

bzrtp 5.5 offers "GCM " first. Under it ZRTP derives the SRTP master key as usual (16 or 32
bytes for AES1/AES3) but a 12-byte master salt: KDF(s0, "Initiator|Responder SRTP master salt",
KDF_Context, 96). From those, RFC 7714 §11 keeps RFC 3711's key derivation (AES-CM PRF, the
12-byte master salt zero-padded to 14 bytes as libsrtp does) for a session key of the master
key's length and a 12-byte session salt; there is no authentication key.

- SRTP (§8): nonce = (00 00 || SSRC || ROC || SEQ) XOR session salt; the RTP header (with its
  CSRCs and extension) is the associated data; the payload is encrypted and a 16-byte tag
  follows it.
- SRTCP (§9): nonce = (00 00 || SSRC || 00 00 || index) XOR salt, with the 31-bit SRTCP index;
  the associated data is the first 8 bytes and the E flag || index word, which goes after the
  tag. We always encrypt (E = 1); an unencrypted packet (E = 0, the whole RTCP packet is
  associated data) is accepted on receipt.

`SrtpGcmContext` has `SrtpContext`'s shape: one direction, state per SSRC, a replay window,
`SrtpError` (reason "short", "auth", "replay", "exhausted") for whatever it refuses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pidphone.errors import LocalProtocolError
from pidphone.srtp.context import (
    MAX_SRTCP_INDEX,
    MIN_REPLAY_WINDOW,
    RTCP_HEADER_LEN,
    RTP_HEADER_LEN,
    SRTCP_E_FLAG,
    SRTCP_INDEX_LEN,
    ReplayWindow,
    SrtpError,
    estimate_index,
    rtp_header_len,
)
from pidphone.srtp.kdf import (
    LABEL_RTCP_ENCRYPTION,
    LABEL_RTCP_SALT,
    LABEL_RTP_ENCRYPTION,
    LABEL_RTP_SALT,
    prf,
)

GCM_SALT_LEN = 12
"""Master and session salt length in bytes (96 bits, RFC 7714 §12)."""
GCM_TAG_LEN = 16
AEAD_AES_128_GCM = "AEAD_AES_128_GCM"
AEAD_AES_256_GCM = "AEAD_AES_256_GCM"
GCM_KEY_LENGTHS = {AEAD_AES_128_GCM: 16, AEAD_AES_256_GCM: 32}
_ZRTP_CIPHERS = {"AES1": AEAD_AES_128_GCM, "AES3": AEAD_AES_256_GCM}


def gcm_profile_for(cipher: str) -> str:
    """The AEAD profile for ZRTP's cipher under the "GCM " auth tag ("AES1" -> AES-128)."""
    try:
        return _ZRTP_CIPHERS[cipher]
    except KeyError:
        raise LocalProtocolError(
            f"no AES-GCM SRTP profile for ZRTP cipher {cipher!r}; ciphers {sorted(_ZRTP_CIPHERS)}"
        ) from None


@dataclass(frozen=True)
class GcmSessionKeys:
    """The session key and 12-byte session salt of one kind (SRTP or SRTCP)."""

    key: bytes
    salt: bytes


def derive_gcm_session_keys(master_key: bytes, master_salt: bytes, *, rtcp: bool) -> GcmSessionKeys:
    """RFC 7714 §11: RFC 3711's KDF with the 96-bit master salt padded to 112 bits."""
    padded = master_salt + b"\x00\x00"
    key_label, salt_label = (
        (LABEL_RTCP_ENCRYPTION, LABEL_RTCP_SALT) if rtcp else (LABEL_RTP_ENCRYPTION, LABEL_RTP_SALT)
    )
    return GcmSessionKeys(
        key=prf(master_key, padded, key_label, len(master_key)),
        salt=prf(master_key, padded, salt_label, GCM_SALT_LEN),
    )


class SrtpGcmContext:
    """Protects or unprotects ONE direction of RTP and RTCP with AES-GCM (RFC 7714).

    Keep one context for sending and another for receiving. Not thread-safe.
    """

    def __init__(
        self,
        profile: str,
        master_key: bytes,
        master_salt: bytes,
        *,
        replay_window: int = 128,
    ) -> None:
        key_len = GCM_KEY_LENGTHS.get(profile)
        if key_len is None:
            raise LocalProtocolError(
                f"unknown AES-GCM SRTP profile {profile!r}; known: {', '.join(GCM_KEY_LENGTHS)}"
            )
        if len(master_key) != key_len:
            raise LocalProtocolError(
                f"{profile} needs a {key_len}-byte master key, got {len(master_key)} bytes"
            )
        if len(master_salt) != GCM_SALT_LEN:
            raise LocalProtocolError(
                f"{profile} needs a {GCM_SALT_LEN}-byte master salt, got {len(master_salt)} bytes"
            )
        rtp = derive_gcm_session_keys(master_key, master_salt, rtcp=False)
        rtcp = derive_gcm_session_keys(master_key, master_salt, rtcp=True)
        self._init(profile, rtp, rtcp, replay_window)

    @classmethod
    def from_session_keys(
        cls, profile: str, rtp: GcmSessionKeys, rtcp: GcmSessionKeys, *, replay_window: int = 128
    ) -> SrtpGcmContext:
        """A context on given session keys (RFC 7714's test vectors state session keys)."""
        context = cls.__new__(cls)
        context._init(profile, rtp, rtcp, replay_window)
        return context

    def _init(
        self, profile: str, rtp: GcmSessionKeys, rtcp: GcmSessionKeys, replay_window: int
    ) -> None:
        if replay_window < MIN_REPLAY_WINDOW:
            raise LocalProtocolError(
                f"replay window must be at least {MIN_REPLAY_WINDOW} packets (RFC 3711 §3.3.2)"
            )
        for keys in (rtp, rtcp):
            if len(keys.key) != GCM_KEY_LENGTHS[profile] or len(keys.salt) != GCM_SALT_LEN:
                raise LocalProtocolError(f"{profile} session key or salt of the wrong length")
        self.profile = profile
        self._window = replay_window
        self._rtp_aead = AESGCM(rtp.key)
        self._rtp_salt = int.from_bytes(rtp.salt, "big")
        self._rtcp_aead = AESGCM(rtcp.key)
        self._rtcp_salt = int.from_bytes(rtcp.salt, "big")
        self._rtp_streams: dict[int, ReplayWindow] = {}
        self._rtcp_streams: dict[int, ReplayWindow] = {}

    def __repr__(self) -> str:
        return f"SrtpGcmContext({self.profile!r}, ssrcs={sorted(self._rtp_streams)})"

    @property
    def srtcp_tag_len(self) -> int:
        """SRTCP's tag: always the 16-byte GCM tag (`SrtpContext`'s shape)."""
        return GCM_TAG_LEN

    def use_srtcp_tag_len(self, tag_len: int) -> None:
        """`SrtpContext`'s shape: the GCM tag has one length."""
        if tag_len != GCM_TAG_LEN:
            raise LocalProtocolError(f"{self.profile} carries {GCM_TAG_LEN}-byte tags only")

    def roc(self, ssrc: int) -> int:
        """The rollover counter this context holds for `ssrc` (0 if it has seen none)."""
        stream = self._rtp_streams.get(ssrc)
        return 0 if stream is None else stream.highest >> 16

    def _rtp_nonce(self, ssrc: int, index: int) -> bytes:
        return ((ssrc << 48 | index) ^ self._rtp_salt).to_bytes(GCM_SALT_LEN, "big")

    def _rtcp_nonce(self, ssrc: int, index: int) -> bytes:
        return ((ssrc << 48 | index) ^ self._rtcp_salt).to_bytes(GCM_SALT_LEN, "big")

    def _accept(self, streams: dict[int, ReplayWindow], ssrc: int, index: int) -> None:
        """Record an authenticated index in its SSRC's replay window (made on the first)."""
        stream = streams.get(ssrc)
        if stream is None:
            stream = streams[ssrc] = ReplayWindow(index, self._window)
        stream.accept(index)

    # -- SRTP (RFC 7714 §8) -------------------------------------------------------------------

    def protect(self, rtp: bytes) -> bytes:
        """Encrypt one RTP packet's payload; the header is authenticated; the tag follows."""
        if len(rtp) < RTP_HEADER_LEN:
            raise SrtpError("short", f"RTP packet of {len(rtp)} bytes is shorter than its header")
        header_len = rtp_header_len(rtp, len(rtp))
        seq, ssrc = struct.unpack_from("!H4xI", rtp, 2)
        stream = self._rtp_streams.get(ssrc)
        if stream is None:
            stream = self._rtp_streams[ssrc] = ReplayWindow(seq, self._window)
        index = estimate_index(stream.highest, seq)
        if index < 0:  # a sender has no "before its first packet": stay in ROC 0
            index += 0x10000
        stream.highest = max(stream.highest, index)
        header = bytes(rtp[:header_len])
        sealed = self._rtp_aead.encrypt(
            self._rtp_nonce(ssrc, index), bytes(rtp[header_len:]), header
        )
        return header + sealed

    def unprotect(self, srtp: bytes) -> bytes:
        """Authenticate, replay-check and decrypt one SRTP packet; return the RTP packet."""
        end = len(srtp) - GCM_TAG_LEN
        if end < RTP_HEADER_LEN:
            raise SrtpError("short", f"SRTP packet of {len(srtp)} bytes is too short")
        header_len = rtp_header_len(srtp, end)
        seq, ssrc = struct.unpack_from("!H4xI", srtp, 2)
        stream = self._rtp_streams.get(ssrc)
        index = seq if stream is None else estimate_index(stream.highest, seq)
        if stream is not None and stream.replayed(index):
            raise SrtpError("replay", f"SRTP packet index {index} replayed or too old")
        header = bytes(srtp[:header_len])
        try:
            payload = self._rtp_aead.decrypt(
                self._rtp_nonce(ssrc, index), bytes(srtp[header_len:]), header
            )
        except InvalidTag:
            raise SrtpError("auth", "SRTP authentication failed") from None
        self._accept(self._rtp_streams, ssrc, index)
        return header + payload

    # -- SRTCP (RFC 7714 §9) ------------------------------------------------------------------

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """Encrypt a (compound) RTCP packet: header, ciphertext, tag, E flag || SRTCP index.

        The index is counted per SSRC of the first packet and, as in libsrtp, the first one
        sent is 1.
        """
        if len(rtcp) < RTCP_HEADER_LEN:
            raise SrtpError("short", f"RTCP packet of {len(rtcp)} bytes is shorter than its header")
        ssrc = struct.unpack_from("!I", rtcp, 4)[0]
        stream = self._rtcp_streams.get(ssrc)
        if stream is None:
            stream = self._rtcp_streams[ssrc] = ReplayWindow(0, self._window)
        index = stream.highest + 1
        if index > MAX_SRTCP_INDEX:
            raise SrtpError("exhausted", "SRTCP index exhausted: the master key must change")
        stream.highest = index
        trailer = struct.pack("!I", SRTCP_E_FLAG | index)
        header = bytes(rtcp[:RTCP_HEADER_LEN])
        sealed = self._rtcp_aead.encrypt(
            self._rtcp_nonce(ssrc, index), bytes(rtcp[RTCP_HEADER_LEN:]), header + trailer
        )
        return header + sealed + trailer

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """Authenticate, replay-check and (if E is set) decrypt one SRTCP packet."""
        body_end = len(srtcp) - SRTCP_INDEX_LEN
        if body_end - GCM_TAG_LEN < RTCP_HEADER_LEN:
            raise SrtpError("short", f"SRTCP packet of {len(srtcp)} bytes is too short")
        e_index = struct.unpack_from("!I", srtcp, body_end)[0]
        index = e_index & MAX_SRTCP_INDEX
        ssrc = struct.unpack_from("!I", srtcp, 4)[0]
        stream = self._rtcp_streams.get(ssrc)
        if stream is not None and stream.replayed(index):
            raise SrtpError("replay", f"SRTCP index {index} replayed or too old")
        trailer = bytes(srtcp[body_end:])
        nonce = self._rtcp_nonce(ssrc, index)
        try:
            if e_index & SRTCP_E_FLAG:
                header = bytes(srtcp[:RTCP_HEADER_LEN])
                body = self._rtcp_aead.decrypt(
                    nonce, bytes(srtcp[RTCP_HEADER_LEN:body_end]), header + trailer
                )
                rtcp = header + body
            else:
                tag_at = body_end - GCM_TAG_LEN
                rtcp = bytes(srtcp[:tag_at])
                self._rtcp_aead.decrypt(nonce, bytes(srtcp[tag_at:body_end]), rtcp + trailer)
        except InvalidTag:
            raise SrtpError("auth", "SRTCP authentication failed") from None
        self._accept(self._rtcp_streams, ssrc, index)
        return rtcp
