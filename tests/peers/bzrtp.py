"""bzrtp 5.5 (Linphone's ZRTP library, with its post-quantum engine) driven in memory.

A by-hand peer: bzrtp's sources are in no package registry, so CI cannot build it. It runs
sans-I/O like pidphone's `ZrtpSession`: packets it wants to send are collected from its send
callback, packets are handed to it, and its timers run on a clock the caller moves.

    lib = load_library()                 # $PIDPHONE_BZRTP_LIB, else BzrtpMissingError: how to build
    bob = BzrtpPeer(lib, ssrc=0xB0B, key_agreements=("X3M3",))
    bob.start(now_ms=0)
    bob.datagrams_to_send()                # [b"\\x10\\x00..." Hello]
    bob.receive_datagram(data); bob.iterate(now_ms)
    bob.secrets                          # BzrtpSecrets(sas="...", key_agreement="X3M3", ...)

`DeterministicRandom(seed).install(lib)` replaces the randomness of OpenSSL (which bctoolbox,
and so bzrtp, draws from) and of liboqs with a seeded stream and logs every draw, so that a run
repeats exactly and the private keys of a transcript can be recovered from the log.

By hand: `python -m tests.peers.bzrtp --key-agreements X3M3 [--seed S --out tests/data/zrtp/N]`
runs two bzrtp contexts back to back and can record the exchange as test data;
`--against-pidphone` runs bzrtp against pidphone's `ZrtpSession` instead (`versus_session`),
packet by packet, and checks the SAS and that the SRTP keys cross.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import hashlib
import json
import os
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import mlkem, x448

from pidphone.zrtp.fragment import Reassembler
from pidphone.zrtp.messages import split_packet

LIBRARY_ENV = "PIDPHONE_BZRTP_LIB"
NEEDS = f"""\
bzrtp with post-quantum key agreements is needed: set {LIBRARY_ENV} to its libbzrtp.so.
It is built by hand (no distribution ships it) from Belledonne Communications' linphone-sdk,
tag 5.5.15 (folders bcunit, bctoolbox, postquantumcryptoengine, bzrtp), and Open Quantum Safe's
liboqs 0.15.0 (0.16 renamed hqc_128, which the engine still uses):
- liboqs as shared libraries with OQS_BUILD_ONLY_LIB=ON, OQS_USE_OPENSSL=OFF,
  OQS_DIST_BUILD=ON, OQS_ENABLE_KEM_HQC=ON and OQS_MINIMAL_BUILD listing the ML-KEM, Kyber and
  HQC KEMs (the engine links all three);
- bcunit as it comes;
- bctoolbox with ENABLE_MBEDTLS=OFF, ENABLE_OPENSSL=ON, ENABLE_DECAF=ON (Debian's libdecaf-dev)
  and ENABLE_STRICT=OFF; first fix two faults of its OpenSSL backend in src/crypto: HKDF with
  an empty salt passes a NULL pointer that OpenSSL 3.0 refuses (openssl.cc, HMAC_KDF), and
  bctbx_hmac with a NULL key computes a plain hash instead of an HMAC keyed with the empty
  string (openssl.c); without these the hybrid key agreements disagree with Linphone;
- postquantumcryptoengine with ENABLE_STRICT=OFF;
- bzrtp with ENABLE_PQCRYPTO=ON, ENABLE_ZIDCACHE=OFF and ENABLE_STRICT=OFF.
Everything installs into one prefix; {LIBRARY_ENV}=<prefix>/lib/libbzrtp.so."""

# bzrtp.h: algorithm codes; the order of the key agreement codes is bzrtp's speed order
HASH_CODES = {"S256": 0x11, "S384": 0x12, "S512": 0x13}
CIPHER_CODES = {"AES1": 0x21, "AES2": 0x22, "AES3": 0x23}
AUTH_TAG_CODES = {"HS32": 0x31, "HS80": 0x32, "GCM": 0x35}
KEY_AGREEMENT_CODES = {
    "DH2k": 0x41,
    "X255": 0x42,
    "EC25": 0x44,
    "X448": 0x45,
    "DH3k": 0x47,
    "EC38": 0x48,
    "MLK1": 0x57,
    "MLK2": 0x58,
    "MLK3": 0x59,
    "X1M1": 0x5A,
    "X3M3": 0x5B,
    "Mult": 0x9F,
}
SAS_CODES = {"B32": 0xA1, "B256": 0xA2}
_TYPES = {"hashes": 0x01, "ciphers": 0x02, "auth_tags": 0x04, "key_agreements": 0x08, "sas": 0x10}
_NAMES = {
    code: name
    for table in (HASH_CODES, CIPHER_CODES, AUTH_TAG_CODES, KEY_AGREEMENT_CODES, SAS_CODES)
    for name, code in table.items()
}
CHANNEL_SECURE = 0x1004
CHANNEL_ERROR = 0x1008


class BzrtpMissingError(RuntimeError):
    """The library is not where the environment says; the message says how to build it."""


class BzrtpError(RuntimeError):
    """A bzrtp call returned an error code."""


_StatusCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_uint8, ctypes.c_uint8, ctypes.c_char_p
)
_SendCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_uint16
)


class _SrtpSecrets(ctypes.Structure):
    """bzrtpSrtpSecrets_t (bzrtp.h)."""

    _fields_ = [
        ("selfSrtpKey", ctypes.POINTER(ctypes.c_uint8)),
        ("selfSrtpKeyLength", ctypes.c_uint8),
        ("selfSrtpSalt", ctypes.POINTER(ctypes.c_uint8)),
        ("selfSrtpSaltLength", ctypes.c_uint8),
        ("peerSrtpKey", ctypes.POINTER(ctypes.c_uint8)),
        ("peerSrtpKeyLength", ctypes.c_uint8),
        ("peerSrtpSalt", ctypes.POINTER(ctypes.c_uint8)),
        ("peerSrtpSaltLength", ctypes.c_uint8),
        ("cipherAlgo", ctypes.c_uint8),
        ("cipherKeyLength", ctypes.c_uint8),
        ("authTagAlgo", ctypes.c_uint8),
        ("sas", ctypes.c_char_p),
        ("incorrectSas", ctypes.c_char_p * 3),
        ("sasLength", ctypes.c_uint8),
        ("hashAlgo", ctypes.c_uint8),
        ("keyAgreementAlgo", ctypes.c_uint8),
        ("sasAlgo", ctypes.c_uint8),
        ("cacheMismatch", ctypes.c_uint8),
        ("auxSecretMismatch", ctypes.c_uint8),
        ("peerAcceptGoClear", ctypes.c_uint8),
    ]


_SecretsCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_SrtpSecrets), ctypes.c_uint8
)
_StartCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_SrtpSecrets), ctypes.c_int32
)
_ExportCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint8)


class _Callbacks(ctypes.Structure):
    """bzrtpCallbacks_t (bzrtp.h)."""

    _fields_ = [
        ("bzrtp_statusMessage", _StatusCallback),
        ("bzrtp_messageLevel", ctypes.c_int),
        ("bzrtp_sendData", _SendCallback),
        ("bzrtp_srtpSecretsAvailable", _SecretsCallback),
        ("bzrtp_startSrtpSession", _StartCallback),
        ("bzrtp_contextReadyForExportedKeys", _ExportCallback),
    ]


@dataclass(frozen=True)
class BzrtpLibrary:
    """libbzrtp and the libraries beside it whose randomness a run may replace."""

    path: Path
    bzrtp: ctypes.CDLL
    oqs: ctypes.CDLL
    crypto: ctypes.CDLL


def load_library(path: str | None = None) -> BzrtpLibrary:
    """Load libbzrtp from `path` or $PIDPHONE_BZRTP_LIB; raise `BzrtpMissingError` if absent."""
    where = path or os.environ.get(LIBRARY_ENV)
    if not where or not Path(where).is_file():
        raise BzrtpMissingError(f"no libbzrtp at {where!r}.\n{NEEDS}")
    lib_path = Path(where).resolve()
    try:
        # its dependencies first, from the same prefix (an install there sets no RPATH)
        oqs = ctypes.CDLL(str(lib_path.parent / "liboqs.so"), mode=ctypes.RTLD_GLOBAL)
        for name in ("libbctoolbox.so", "libpostquantumcryptoengine.so"):
            ctypes.CDLL(str(lib_path.parent / name), mode=ctypes.RTLD_GLOBAL)
        bzrtp = ctypes.CDLL(str(lib_path))
    except OSError as exc:
        raise BzrtpMissingError(f"{lib_path} does not load ({exc}).\n{NEEDS}") from exc
    if not bzrtp.bzrtp_is_PQ_available():
        raise BzrtpMissingError(
            f"{lib_path} was built without post-quantum key agreements.\n{NEEDS}"
        )
    crypto_name = ctypes.util.find_library("crypto") or "libcrypto.so.3"
    crypto = ctypes.CDLL(crypto_name)
    _declare(bzrtp)
    return BzrtpLibrary(lib_path, bzrtp, oqs, crypto)


def _declare(lib: ctypes.CDLL) -> None:
    ctx, u32 = ctypes.c_void_p, ctypes.c_uint32
    lib.bzrtp_createBzrtpContext.restype = ctx
    lib.bzrtp_createBzrtpContext.argtypes = []
    for name, args in {
        "bzrtp_initBzrtpContext": [ctx, u32],
        "bzrtp_destroyBzrtpContext": [ctx, u32],
        "bzrtp_setCallbacks": [ctx, ctypes.POINTER(_Callbacks)],
        "bzrtp_setClientData": [ctx, u32, ctypes.c_void_p],
        "bzrtp_startChannelEngine": [ctx, u32],
        "bzrtp_iterate": [ctx, u32, ctypes.c_uint64],
        "bzrtp_processMessage": [ctx, u32, ctypes.POINTER(ctypes.c_uint8), ctypes.c_uint16],
        "bzrtp_setSupportedCryptoTypes": [
            ctx,
            ctypes.c_uint8,
            ctypes.POINTER(ctypes.c_uint8),
            ctypes.c_uint8,
        ],
        "bzrtp_getChannelStatus": [ctx, u32],
        "bzrtp_set_MTU": [ctx, ctypes.c_size_t],
        "bzrtp_setPeerHelloHash": [ctx, u32, ctypes.c_char_p, ctypes.c_size_t],
        "bzrtp_getSelfHelloHash": [ctx, u32, ctypes.c_char_p, ctypes.c_size_t],
    }.items():
        function = getattr(lib, name)
        function.argtypes = args
        function.restype = ctypes.c_int
    lib.bzrtp_SASVerified.argtypes = [ctx]
    lib.bzrtp_SASVerified.restype = None


# -- deterministic randomness -----------------------------------------------------------------

_RandBytes = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_ubyte), ctypes.c_int)
_RandSeed = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_RandAdd = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_double)
_RandCleanup = ctypes.CFUNCTYPE(None)
_RandStatus = ctypes.CFUNCTYPE(ctypes.c_int)
_OqsRandom = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)


class _RandMethod(ctypes.Structure):
    """OpenSSL's RAND_METHOD (deprecated in 3.0 but still honoured by RAND_bytes)."""

    _fields_ = [
        ("seed", _RandSeed),
        ("bytes", _RandBytes),
        ("cleanup", _RandCleanup),
        ("add", _RandAdd),
        ("pseudorand", _RandBytes),
        ("status", _RandStatus),
    ]


@dataclass
class Draw:
    """One request for random bytes: which library asked, and what it got."""

    source: str
    data: bytes


@dataclass
class DeterministicRandom:
    """A SHAKE-256 stream keyed by `seed` that replaces OpenSSL's and liboqs' randomness.

    Process-wide once installed (it also feeds Python's own ssl module, which uses the same
    libcrypto): meant for a harness process, never for the phone.
    """

    seed: bytes
    draws: list[Draw] = field(default_factory=list)
    _counter: int = 0
    _keep: list[object] = field(default_factory=list)

    def take(self, source: str, size: int) -> bytes:
        block = hashlib.shake_256(self.seed + struct.pack("!Q", self._counter)).digest(size)
        self._counter += 1
        self.draws.append(Draw(source, block))
        return block

    def install(self, lib: BzrtpLibrary) -> None:
        def openssl_bytes(buffer: ctypes._Pointer[ctypes.c_ubyte], size: int) -> int:
            ctypes.memmove(buffer, self.take("openssl", size), size)
            return 1

        def oqs_bytes(buffer: ctypes._Pointer[ctypes.c_uint8], size: int) -> None:
            ctypes.memmove(buffer, self.take("liboqs", size), size)

        method = _RandMethod(
            _RandSeed(lambda _data, _size: 1),
            _RandBytes(openssl_bytes),
            _RandCleanup(lambda: None),
            _RandAdd(lambda _data, _size, _entropy: 1),
            _RandBytes(openssl_bytes),
            _RandStatus(lambda: 1),
        )
        oqs_callback = _OqsRandom(oqs_bytes)
        self._keep.extend([method, oqs_callback])
        lib.crypto.RAND_set_rand_method.argtypes = [ctypes.POINTER(_RandMethod)]
        lib.crypto.RAND_set_rand_method.restype = ctypes.c_int
        if lib.crypto.RAND_set_rand_method(ctypes.byref(method)) != 1:
            raise BzrtpError("RAND_set_rand_method refused the deterministic generator")
        lib.oqs.OQS_randombytes_custom_algorithm.argtypes = [_OqsRandom]
        lib.oqs.OQS_randombytes_custom_algorithm.restype = None
        lib.oqs.OQS_randombytes_custom_algorithm(oqs_callback)

    def find(self, source: str, size: int) -> list[bytes]:
        """Every draw of `size` bytes from `source`, in order."""
        return [d.data for d in self.draws if d.source == source and len(d.data) == size]


# -- one bzrtp context, one channel -----------------------------------------------------------


@dataclass(frozen=True)
class BzrtpSecrets:
    """What bzrtp hands its SRTP layer and UI when the exchange completes."""

    sas: str
    hash: str
    cipher: str
    auth_tag: str
    key_agreement: str
    sas_scheme: str
    self_key: bytes = field(repr=False)
    self_salt: bytes = field(repr=False)
    peer_key: bytes = field(repr=False)
    peer_salt: bytes = field(repr=False)
    verified: bool = False


def _read(pointer: ctypes._Pointer[ctypes.c_uint8], size: int) -> bytes:
    return ctypes.string_at(pointer, size)


class BzrtpPeer:
    """One bzrtp context with one channel, cacheless, run on a caller-driven clock (ms)."""

    def __init__(
        self,
        lib: BzrtpLibrary,
        *,
        ssrc: int,
        hashes: Sequence[str] = (),
        ciphers: Sequence[str] = (),
        auth_tags: Sequence[str] = (),
        key_agreements: Sequence[str] = (),
        sas: Sequence[str] = (),
        mtu: int | None = None,
    ) -> None:
        self.lib = lib.bzrtp
        self.ssrc = ssrc
        self.outbox: list[bytes] = []
        self.log: list[str] = []
        self.secrets: BzrtpSecrets | None = None
        self._parts: dict[str, bytes] = {}
        self._callbacks = _Callbacks(
            _StatusCallback(self._on_status),
            3,  # BZRTP_MESSAGE_DEBUG: everything
            _SendCallback(self._on_send),
            _SecretsCallback(self._on_secrets),
            _StartCallback(self._on_start),
            _ExportCallback(lambda _data, _zuid, _role: 0),
        )
        self.context = self.lib.bzrtp_createBzrtpContext()
        if not self.context:
            raise BzrtpError("bzrtp_createBzrtpContext failed")
        self._check(self.lib.bzrtp_setCallbacks(self.context, ctypes.byref(self._callbacks)))
        for kind, names, codes in (
            ("hashes", hashes, HASH_CODES),
            ("ciphers", ciphers, CIPHER_CODES),
            ("auth_tags", auth_tags, AUTH_TAG_CODES),
            ("key_agreements", key_agreements, KEY_AGREEMENT_CODES),
            ("sas", sas, SAS_CODES),
        ):
            if names:
                array = (ctypes.c_uint8 * 7)(*(codes[n] for n in names))
                self._check(
                    self.lib.bzrtp_setSupportedCryptoTypes(
                        self.context, _TYPES[kind], array, len(names)
                    )
                )
        if mtu is not None:
            self._check(self.lib.bzrtp_set_MTU(self.context, mtu))
        self._check(self.lib.bzrtp_initBzrtpContext(self.context, ssrc))
        self._check(self.lib.bzrtp_setClientData(self.context, ssrc, None))

    def _check(self, code: int) -> None:
        if code != 0:
            raise BzrtpError(f"bzrtp returned 0x{code:04x}")

    # callbacks (bzrtp calls them from inside start/iterate/receive)

    def _on_status(self, _data: int | None, level: int, code: int, text: bytes | None) -> int:
        self.log.append(f"level {level} code 0x{code:02x} {text.decode() if text else ''}")
        return 0

    def _on_send(self, _data: int | None, packet: ctypes._Pointer[ctypes.c_uint8], n: int) -> int:
        self.outbox.append(_read(packet, n))
        return 0

    def _on_secrets(
        self, _data: int | None, secrets: ctypes._Pointer[_SrtpSecrets], part: int
    ) -> int:
        s = secrets.contents
        if part & 0x01:
            self._parts["self_key"] = _read(s.selfSrtpKey, s.selfSrtpKeyLength)
            self._parts["self_salt"] = _read(s.selfSrtpSalt, s.selfSrtpSaltLength)
        if part & 0x02:
            self._parts["peer_key"] = _read(s.peerSrtpKey, s.peerSrtpKeyLength)
            self._parts["peer_salt"] = _read(s.peerSrtpSalt, s.peerSrtpSaltLength)
        return 0

    def _on_start(
        self, _data: int | None, secrets: ctypes._Pointer[_SrtpSecrets], verified: int
    ) -> int:
        s = secrets.contents
        self.secrets = BzrtpSecrets(
            sas=(s.sas or b"").decode(),
            hash=_NAMES[s.hashAlgo],
            cipher=_NAMES[s.cipherAlgo],
            auth_tag=_NAMES[s.authTagAlgo],
            key_agreement=_NAMES[s.keyAgreementAlgo],
            sas_scheme=_NAMES[s.sasAlgo],
            self_key=self._parts.get("self_key", b""),
            self_salt=self._parts.get("self_salt", b""),
            peer_key=self._parts.get("peer_key", b""),
            peer_salt=self._parts.get("peer_salt", b""),
            verified=bool(verified),
        )
        return 0

    # the sans-I/O verbs

    def start(self, now_ms: int) -> None:
        self._check(self.lib.bzrtp_iterate(self.context, self.ssrc, now_ms))
        self._check(self.lib.bzrtp_startChannelEngine(self.context, self.ssrc))

    def iterate(self, now_ms: int) -> None:
        """Let bzrtp's timer fire if it is due (its retransmissions)."""
        self.lib.bzrtp_iterate(self.context, self.ssrc, now_ms)

    def receive_datagram(self, packet: bytes) -> int:
        """Hand bzrtp one datagram; returns its code (0, or why it dropped the packet)."""
        buffer = (ctypes.c_uint8 * len(packet)).from_buffer_copy(packet)
        return int(self.lib.bzrtp_processMessage(self.context, self.ssrc, buffer, len(packet)))

    def datagrams_to_send(self) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out

    @property
    def secure(self) -> bool:
        return int(self.lib.bzrtp_getChannelStatus(self.context, self.ssrc)) == CHANNEL_SECURE

    def hello_hash(self) -> str:
        """Our a=zrtp-hash value ("1.10 <hex>")."""
        buffer = ctypes.create_string_buffer(80)
        self._check(self.lib.bzrtp_getSelfHelloHash(self.context, self.ssrc, buffer, 80))
        return buffer.value.decode()

    def close(self) -> None:
        if self.context:
            self.lib.bzrtp_destroyBzrtpContext(self.context, self.ssrc)
            self.context = None


# -- two contexts back to back, the transcript ------------------------------------------------

TICK_MS = 10


@dataclass(frozen=True)
class Datagram:
    """One packet on the simulated wire."""

    at_ms: int
    sender: str
    data: bytes = field(repr=False)

    @property
    def kind(self) -> str:
        """The message type, or "fragment" for a 0x11 packet."""
        if self.data[0] == 0x11:
            return "fragment"
        return self.data[16:24].decode("latin-1").strip()


def back_to_back(
    alice: BzrtpPeer, bob: BzrtpPeer, *, until_ms: int = 20_000, bob_starts_ms: int = 0
) -> list[Datagram]:
    """Run two peers with a lossless wire until both are secure; return every datagram."""
    wire: list[Datagram] = []
    peers = {"alice": alice, "bob": bob}
    alice.start(0)
    started = {"alice": True, "bob": False}
    now = 0
    while now <= until_ms:
        if not started["bob"] and now >= bob_starts_ms:
            bob.start(now)
            started["bob"] = True
        moved = True
        while moved:
            moved = False
            for name, peer in peers.items():
                other = peers["bob" if name == "alice" else "alice"]
                for packet in peer.datagrams_to_send():
                    wire.append(Datagram(now, name, packet))
                    if started["bob" if name == "alice" else "alice"]:
                        other.receive_datagram(packet)
                    moved = True
        if alice.secure and bob.secure and alice.secrets and bob.secrets:
            break
        now += TICK_MS
        for name, peer in peers.items():
            if started[name]:
                peer.iterate(now)
    return wire


class SansIoPeer(Protocol):
    """The verbs of `BzrtpPeer` that `versus_session` uses (a recorded run can stand in)."""

    def start(self, now_ms: int) -> None: ...
    def iterate(self, now_ms: int) -> None: ...
    def receive_datagram(self, packet: bytes) -> int: ...
    def datagrams_to_send(self) -> list[bytes]: ...


class SansIoSession(Protocol):
    """The verbs of pidphone's `ZrtpSession` that a run against bzrtp needs (time in seconds)."""

    def start(self, now: float) -> None: ...
    def receive_datagram(self, data: bytes, now: float) -> bool: ...
    def datagrams_to_send(self) -> list[bytes]: ...
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...


def versus_session(
    peer: SansIoPeer,
    session: SansIoSession,
    *,
    done: Callable[[], bool],
    until_ms: int = 20_000,
    peer_name: str = "bzrtp",
    session_name: str = "pidphone",
) -> list[Datagram]:
    """bzrtp against a sans-I/O ZRTP session, packet by packet in memory, until `done()`."""
    wire: list[Datagram] = []
    now = 0
    peer.start(now)
    session.start(now / 1000)
    while now <= until_ms:
        moved = True
        while moved:
            moved = False
            for packet in peer.datagrams_to_send():
                wire.append(Datagram(now, peer_name, packet))
                session.receive_datagram(packet, now / 1000)
                moved = True
            for packet in session.datagrams_to_send():
                wire.append(Datagram(now, session_name, packet))
                peer.receive_datagram(packet)
                moved = True
        if done():
            break
        now += TICK_MS
        peer.iterate(now)
        timer = session.get_timer()
        if timer is not None and timer <= now / 1000:
            session.handle_timer(now / 1000)
    return wire


def transcript_rows(wire: Sequence[Datagram]) -> str:
    """Tab-separated: time (ms), sender, message type, the whole datagram in hex."""
    lines = ["# ms\tsender\ttype\tdatagram"]
    lines += [f"{d.at_ms}\t{d.sender}\t{d.kind}\t{d.data.hex()}" for d in wire]
    return "\n".join(lines) + "\n"


def _secrets_json(secrets: BzrtpSecrets | None) -> dict[str, object]:
    if secrets is None:
        return {}
    return {
        "sas": secrets.sas,
        "hash": secrets.hash,
        "cipher": secrets.cipher,
        "auth_tag": secrets.auth_tag,
        "key_agreement": secrets.key_agreement,
        "sas_scheme": secrets.sas_scheme,
        "self_srtp_key": secrets.self_key.hex(),
        "self_srtp_salt": secrets.self_salt.hex(),
        "peer_srtp_key": secrets.peer_key.hex(),
        "peer_srtp_salt": secrets.peer_salt.hex(),
    }


def messages(wire: Sequence[Datagram]) -> list[tuple[str, bytes]]:
    """(sender, ZRTP message) for every datagram, fragments reassembled into their message."""
    reassembler = Reassembler()
    found: list[tuple[str, bytes]] = []
    for datagram in wire:
        if datagram.kind == "fragment":
            whole = reassembler.receive(datagram.data, datagram.at_ms / 1000)
            if whole is not None:
                found.append((datagram.sender, whole.message))
        else:
            found.append((datagram.sender, split_packet(datagram.data)[2]))
    return found


COMMIT_PUBLIC_KEY_AT = 12 + 32 + 12 + 20 + 32
"""A KEM Commit: preamble/length/type, H2, ZID, five algorithms, hvi, then the public key."""


def _initiator(wire: Sequence[Datagram]) -> tuple[str, bytes]:
    """Who sent the Commit that DHPart1 answered, and that Commit message."""
    sent = messages(wire)
    (responder,) = {who for who, m in sent if m[4:12] == b"DHPart1 "}
    initiator = "bob" if responder == "alice" else "alice"
    commit = next(m for who, m in sent if who == initiator and m[4:12] == b"Commit  ")
    return initiator, commit


def _initiator_keys(
    random: DeterministicRandom, commit: bytes
) -> dict[str, str]:  # pragma: no cover - by hand
    """The initiator's private X448 key and ML-KEM seed: the draws whose public keys the
    winning Commit carries."""
    public = commit[COMMIT_PUBLIC_KEY_AT:-8]
    found: dict[str, str] = {}
    for private in random.find("openssl", 56):
        if (
            x448.X448PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
            in public
        ):
            found["x448_private"] = private.hex()
    for seed in random.find("liboqs", 64):
        keys = (mlkem.MLKEM1024PrivateKey.from_seed_bytes, mlkem.MLKEM768PrivateKey.from_seed_bytes)
        if any(key(seed).public_key().public_bytes_raw() in public for key in keys):
            found["mlkem_seed"] = seed.hex()
    return found


def self_test(args: argparse.Namespace) -> int:  # pragma: no cover - by hand
    """Two bzrtp contexts back to back; print the outcome, optionally write the transcript."""
    lib = load_library(args.lib)
    random = DeterministicRandom(args.seed.encode()) if args.seed else None
    if random is not None:
        random.install(lib)
    offer = {
        "hashes": args.hashes,
        "ciphers": args.ciphers,
        "auth_tags": args.auth_tags,
        "key_agreements": args.key_agreements,
        "sas": args.sas,
    }
    bob_offer = dict(offer)
    if args.bob_key_agreements:
        bob_offer["key_agreements"] = args.bob_key_agreements
    alice = BzrtpPeer(lib, ssrc=0xA11CE, mtu=args.mtu, **offer)
    bob = BzrtpPeer(lib, ssrc=0xB0B, mtu=args.mtu, **bob_offer)
    wire = back_to_back(alice, bob, bob_starts_ms=args.bob_starts_ms)
    ok = bool(alice.secrets and bob.secrets and alice.secrets.sas == bob.secrets.sas)
    for name, peer in (("alice", alice), ("bob", bob)):
        print(f"{name}: secure={peer.secure} {peer.secrets}")
    print(f"{len(wire)} datagrams: {' '.join(d.kind for d in wire)}")
    print("SAS agree" if ok else "SAS DIFFER OR MISSING")
    if args.out and ok and alice.secrets is not None:
        initiator, commit = _initiator(wire)
        out = Path(args.out)
        out.with_suffix(".tsv").write_text(transcript_rows(wire))
        record: dict[str, object] = {
            "made_with": f"bzrtp 5.5.15 ({lib.path.name}) through tests/peers/bzrtp.py",
            "offer": {k: list(v) for k, v in offer.items()},
            "bob_offer": {k: list(v) for k, v in bob_offer.items()},
            "mtu": args.mtu,
            "seed": args.seed,
            "initiator": initiator,
            "alice": {"ssrc": alice.ssrc, **_secrets_json(alice.secrets)},
            "bob": {"ssrc": bob.ssrc, **_secrets_json(bob.secrets)},
        }
        if random is not None:
            record["initiator_keys"] = _initiator_keys(random, commit)
        out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {out.with_suffix('.tsv')} and {out.with_suffix('.json')}")
    alice.close()
    bob.close()
    return 0 if ok else 1


def against_pidphone(args: argparse.Namespace) -> int:  # pragma: no cover - by hand
    """bzrtp (alice) against pidphone's ZrtpSession (bob) with the same offer."""
    from pidphone.zrtp import MemoryZidCache, Secured, SrtpKeysReady, ZrtpConfig, ZrtpSession

    lib = load_library(args.lib)
    offer = {
        "hashes": args.hashes,
        "ciphers": args.ciphers,
        "auth_tags": args.auth_tags,
        "key_agreements": args.key_agreements,
        "sas": args.sas,
    }
    peer = BzrtpPeer(lib, ssrc=0xA11CE, mtu=args.mtu, **offer)
    default = ZrtpConfig()
    config = ZrtpConfig(
        hashes=tuple(args.hashes) or default.hashes,
        ciphers=tuple(args.ciphers) or default.ciphers,
        auth_tags=tuple(args.auth_tags) or default.auth_tags,
        key_agreements=tuple(args.key_agreements) or default.key_agreements,
        sas_types=tuple(args.sas) or default.sas_types,
    )
    session = ZrtpSession(cache=MemoryZidCache(), ssrc=0xB0B, config=config)
    events: list[object] = []

    def done() -> bool:
        while (event := session.next_event()) is not None:
            events.append(event)
        return peer.secrets is not None and any(isinstance(e, Secured) for e in events)

    wire = versus_session(peer, session, done=done)
    secured = next((e for e in events if isinstance(e, Secured)), None)
    keys = next((e for e in events if isinstance(e, SrtpKeysReady)), None)
    print(f"bzrtp: {peer.secrets}")
    print(f"pidphone: {secured}")
    print(f"{len(wire)} datagrams: {' '.join(f'{d.sender[0]}:{d.kind}' for d in wire)}")
    ok = bool(peer.secrets and secured and peer.secrets.sas == secured.sas)
    if ok and keys is not None and peer.secrets is not None:
        ok = keys.send_key == peer.secrets.peer_key and keys.recv_key == peer.secrets.self_key
        print("SRTP keys cross" if ok else "SRTP KEYS DIFFER")
    print("SAS agree" if ok else "SAS DIFFER OR MISSING")
    peer.close()
    return 0 if ok else 1


PIDPHONE_ZID = b"pidphone ZID"
VERSUS_KEY_AGREEMENTS = ("X3M3", "MLK3", "MLK2")
VERSUS_AUTH_TAGS = ("GCM", "HS80", "HS32")
VERSUS_SAS = ("B32", "B256")
ROLES = ("initiator", "responder")


class RecordingEncapsulation:
    """`kem.MlKemEncapsulate` that keeps what `cryptography` made, for a replay."""

    def __init__(self) -> None:
        self.made: list[list[str]] = []

    def __call__(self, variant: str, public_key: bytes) -> tuple[bytes, bytes]:
        from pidphone.zrtp.kem import mlkem_encapsulate

        secret, ciphertext = mlkem_encapsulate(variant, public_key)
        self.made.append([variant, secret.hex(), ciphertext.hex()])
        return secret, ciphertext


def record_versus(
    lib: BzrtpLibrary, *, key_agreement: str, auth_tag: str, sas: str, role: str
) -> dict[str, object]:  # pragma: no cover - by hand
    """One run of pidphone (in `role`) against bzrtp offering only these, checked (same SAS,
    crossing SRTP keys, SRTP each way) and returned as a record for
    tests/data/zrtp/pidphone-vs-bzrtp55.json. pidphone is the responder when passive; as the
    initiator, seeds are tried until its hvi wins the contention of the two Commits."""
    import random

    from pidphone.zrtp import MemoryZidCache, Secured, SrtpKeysReady, ZrtpConfig, ZrtpSession
    from tests.bzrtp_transcripts import srtp_both_ways

    for seed in range(1, 64):
        config = ZrtpConfig(
            key_agreements=(key_agreement,),
            auth_tags=(auth_tag,),
            sas_types=(sas,),
            passive=role == "responder",
        )
        encapsulations = RecordingEncapsulation()
        session = ZrtpSession(
            cache=MemoryZidCache(PIDPHONE_ZID),
            ssrc=0xB0B,
            config=config,
            random_bytes=random.Random(seed).randbytes,
            encapsulate_mlkem=encapsulations,
        )
        peer = BzrtpPeer(
            lib,
            ssrc=0xA11CE,
            auth_tags=(auth_tag,),
            key_agreements=(key_agreement,),
            sas=(sas,),
        )
        events: list[object] = []

        def done(
            session: ZrtpSession = session, peer: BzrtpPeer = peer, events: list[object] = events
        ) -> bool:
            while (event := session.next_event()) is not None:
                events.append(event)
            return peer.secrets is not None and any(isinstance(e, Secured) for e in events)

        wire = versus_session(peer, session, done=done)
        peer.close()
        secured = next((e for e in events if isinstance(e, Secured)), None)
        keys = next((e for e in events if isinstance(e, SrtpKeysReady)), None)
        if secured is None or keys is None or peer.secrets is None:
            raise BzrtpError(f"{key_agreement} {auth_tag} {sas}: no secure call ({events})")
        if secured.role != role:
            continue
        theirs = _secrets_json(peer.secrets)
        if secured.sas != peer.secrets.sas or keys.send_key != peer.secrets.peer_key:
            raise BzrtpError(f"{key_agreement} {auth_tag} {sas}: {secured} against {theirs}")
        ours = (keys.send_key, keys.send_salt, keys.recv_key, keys.recv_salt)
        srtp_both_ways(keys.profile, ours, theirs)
        return {
            "name": f"{key_agreement}-{auth_tag}-{sas}-pidphone-{role}",
            "key_agreement": key_agreement,
            "auth_tag": auth_tag,
            "sas": sas,
            "role": role,
            "seed": seed,
            "pidphone": {
                "sas": secured.sas,
                "hash": secured.hash,
                "cipher": secured.cipher,
                "profile": keys.profile,
            },
            "bzrtp": theirs,
            "encapsulations": encapsulations.made,
            "wire": [[d.at_ms, d.sender, d.data.hex()] for d in wire],
        }
    raise BzrtpError(f"{key_agreement} {auth_tag} {sas}: pidphone never became the {role}")


def record_all_versus(args: argparse.Namespace) -> int:  # pragma: no cover - by hand
    """Every post-quantum key agreement, auth tag and SAS type, pidphone in both roles
    against bzrtp: print each outcome, write the runs to `args.record_versus`."""
    lib = load_library(args.lib)
    runs = []
    for key_agreement in VERSUS_KEY_AGREEMENTS:
        for auth_tag in VERSUS_AUTH_TAGS:
            for sas in VERSUS_SAS:
                for role in ROLES:
                    run = record_versus(
                        lib, key_agreement=key_agreement, auth_tag=auth_tag, sas=sas, role=role
                    )
                    mine = run["pidphone"]
                    assert isinstance(mine, dict)
                    print(
                        f"{run['name']:36} SAS {mine['sas']:24} {mine['hash']} {mine['cipher']} "
                        f"{mine['profile']:24} {len(run['wire'])} datagrams: SAS equal, "  # type: ignore[arg-type]
                        "SRTP both ways"
                    )
                    runs.append(run)
    record = {
        "made_with": f"bzrtp 5.5.15 ({lib.path.name}) through tests/peers/bzrtp.py",
        "runs": runs,
    }
    Path(args.record_versus).write_text(json.dumps(record, indent=0) + "\n")
    print(f"{len(runs)} runs agree; wrote {args.record_versus}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - by hand
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", help=f"path of libbzrtp.so (default ${LIBRARY_ENV})")
    parser.add_argument("--seed", help="make the run deterministic with this seed")
    parser.add_argument("--out", help="write <out>.tsv (datagrams) and <out>.json (outcome)")
    parser.add_argument("--bob-starts-ms", type=int, default=0)
    parser.add_argument("--mtu", type=int, help="bzrtp's MTU for both (default 1452)")
    parser.add_argument(
        "--record-versus",
        metavar="JSON",
        help="pidphone against bzrtp for every post-quantum combination, both roles: check "
        "each, write the runs (tests/data/zrtp/pidphone-vs-bzrtp55.json)",
    )
    parser.add_argument(
        "--against-pidphone",
        action="store_true",
        help="bzrtp against pidphone's ZrtpSession instead of a second bzrtp",
    )
    for option, default in (
        ("--hashes", ""),
        ("--ciphers", ""),
        ("--auth-tags", ""),
        ("--key-agreements", "X3M3"),
        ("--sas", ""),
        ("--bob-key-agreements", ""),
    ):
        parser.add_argument(
            option,
            default=default,
            type=lambda text: tuple(text.split(",")) if text else (),
            help="comma-separated, most preferred first (empty: bzrtp's default)",
        )
    args = parser.parse_args(argv)
    try:
        if args.record_versus:
            return record_all_versus(args)
        return against_pidphone(args) if args.against_pidphone else self_test(args)
    except BzrtpMissingError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
