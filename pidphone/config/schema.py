"""The configuration's schema: one frozen dataclass per TOML table.

Every field has a default, a unit where it has one, and a docstring below it (this file is the
reference; examples/pidphone.toml is the commented example). `meta()` on a field tells the
builder (build.py) how to check its value; checks that involve several keys are in cross.py.
Secrets are never echoed, in errors or in `repr`.
"""

from __future__ import annotations

import ipaddress
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pidphone.sdp.offer_answer import CODECS as SDP_CODECS
from pidphone.sdp.offer_answer import DEFAULT_CODECS

from . import checks
from .build import meta


@dataclass(frozen=True)
class AccountConfig:
    """[account] — who the phone is. With no `aor` the phone does not register and only
    takes direct calls (server.listen) or runs the demo."""

    aor: str = field(default="", metadata=meta(check=checks.optional(checks.sip_uri)))
    """The address of record, "sip:alice@example.org". Empty: no registration."""
    auth_user: str = field(default="", metadata=meta(check=checks.no_control_characters))
    """The digest authentication user name. Empty: the user part of `aor`."""
    password: str = field(default="", repr=False, metadata=meta(secret=True))
    """The digest password. Prefer `password_file`; never both."""
    password_file: str = field(default="", metadata=meta(path=True))
    """A file holding the password (first line). Read at start; relative to this file."""
    display_name: str = field(default="", metadata=meta(check=checks.no_control_characters))
    """The name shown to the people you call, "Alice (desk)"."""
    auth_realms: tuple[str, ...] = field(default=(), metadata=meta(each=checks.realm))
    """Digest realms, besides the domain of `aor`, whose challenges the password answers
    ("sip.provider.net" for a provider whose realm is not its domain). Whatever the realm,
    the password answers only the registrar or outbound proxy, never a host you dial."""


@dataclass(frozen=True)
class ServerConfig:
    """[server] — the registrar or outbound proxy, reached over TLS (RFC 3261 §26, RFC 5630)."""

    registrar: str = field(default="", metadata=meta(check=checks.optional(checks.host_port(5061))))
    """host[:port] of the registrar, port 5061 if left out. Empty: the domain of account.aor."""
    outbound_proxy: str = field(
        default="", metadata=meta(check=checks.optional(checks.host_port(5061)))
    )
    """host[:port] every request is sent through (RFC 3261 §8.1.2). Empty: the registrar."""
    ca_file: str = field(default="", metadata=meta(path=True))
    """PEM file of the CAs that may sign the server's certificate. Empty: the system's store."""
    pinned_fingerprint: str = field(
        default="", metadata=meta(check=checks.optional(checks.fingerprint))
    )
    """SHA-256 fingerprint of the server's certificate (hex, colons allowed). When set, the
    server must present exactly this certificate, in addition to the CA check."""
    client_cert: str = field(default="", metadata=meta(path=True))
    """PEM certificate the phone presents to the server (mutual TLS). Needs `client_key`."""
    client_key: str = field(default="", metadata=meta(path=True))
    """PEM private key of `client_cert`. Keep it mode 0600."""
    keepalive_interval: float = field(
        default=30.0, metadata=meta(check=checks.between(0, 3600, "s"))
    )
    """Seconds between CRLF keep-alives on the TLS connection (RFC 5626 §4.4.1); 0 disables."""
    register_expires: int = field(default=600, metadata=meta(check=checks.between(60, 86400, "s")))
    """Seconds a registration is asked to last; it is refreshed before it runs out."""
    listen: str = field(default="", metadata=meta(check=checks.optional(checks.listen_address)))
    """address:port of a TLS listener for direct calls without a registrar, "0.0.0.0:5061"
    (every interface: IPv6 as well as IPv4 where the system has it; an explicit address is
    bound as given). Empty: no listener. Needs `listen_ca_file` (or `listen_anyone`)."""
    listen_ca_file: str = field(default="", metadata=meta(path=True))
    """PEM file that a direct caller's client certificate must verify against: the CA that
    signs your callers' certificates, or their own self-signed certificates. A caller
    without such a certificate is cut off in the TLS handshake; one with it may call under
    the SIP identities its certificate names (subjectAltName URI or DNS name), no other."""
    listen_allow: tuple[str, ...] = field(default=(), metadata=meta(each=checks.allowed_caller))
    """Narrows `listen_ca_file` to these callers: SHA-256 certificate fingerprints, or SIP
    identities ("sips:bob@example.org", or "sips:example.org" for a whole domain) that the
    certificate must vouch for. Empty: every certificate `listen_ca_file` verifies."""
    listen_anyone: bool = False
    """true: any TLS client that reaches `listen` may ring the phone, with no certificate
    and under any name it likes. The call is still secured by ZRTP (compare the SAS)."""
    stun_server: str = field(
        default="", metadata=meta(check=checks.optional(checks.host_port(3478)))
    )
    """host[:port] of a STUN server (RFC 8489) to learn the public media address. Empty: none."""

    @property
    def registrar_address(self) -> tuple[str, int] | None:
        """(host, port) of the registrar, or None when there is none."""
        return checks.parse_host_port(self.registrar, 5061) if self.registrar else None

    @property
    def outbound_address(self) -> tuple[str, int] | None:
        """(host, port) every request goes to first: the outbound proxy, else the registrar."""
        if self.outbound_proxy:
            return checks.parse_host_port(self.outbound_proxy, 5061)
        return self.registrar_address

    @property
    def discovery_domain(self) -> str | None:
        """The next hop's domain when it is written without a port and is not an IP address:
        its servers are then found by NAPTR and SRV records (RFC 3263 §4.1-§4.2)."""
        hop = self.outbound_proxy or self.registrar
        if not hop or hop.startswith("[") or ":" in hop:
            return None
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return hop
        return None

    @property
    def pinned_sha256(self) -> bytes | None:
        """The pinned fingerprint as 32 bytes, or None."""
        return bytes.fromhex(self.pinned_fingerprint.replace(":", "")) or None

    @property
    def listen_address(self) -> tuple[str, int] | None:
        return checks.parse_host_port(self.listen, 5061) if self.listen else None

    @property
    def stun_address(self) -> tuple[str, int] | None:
        return checks.parse_host_port(self.stun_server, 3478) if self.stun_server else None


def _zrtp_list(allowed: tuple[str, ...], what: str) -> dict[str, object]:
    return meta(check=checks.preference_list(allowed, what))


@dataclass(frozen=True)
class SecurityConfig:
    """[security] — ZRTP (RFC 6189): the policy, the algorithms offered, most preferred first,
    and the cache of retained secrets. Algorithms the RFC makes mandatory are offered even if
    left out (§5.1.5)."""

    zrtp_policy: Literal["require", "prefer"] = "require"
    """"require": a call whose media cannot be secured by ZRTP is ended, with a NOT SECURE
    warning. "prefer": a call to a phone that never spoke ZRTP goes on in the clear, NOT SECURE
    shown before the first clear frame; one whose exchange began and failed is ended. Under
    both, a call that has been secure never carries clear audio again."""
    key_agreement: tuple[str, ...] = field(
        default=("X3M3", "X255", "EC25", "DH3k"),
        metadata=_zrtp_list(checks.ZRTP_KEY_AGREEMENTS, "ZRTP key agreement"),
    )
    """Key agreement types (§5.1.5): DH3k DH2k EC25 EC38 X255 X448, and the post-quantum ones
    of Linphone's bzrtp 5.5: X3M3 (X448 + ML-KEM-1024), MLK3 (ML-KEM-1024), MLK2 (ML-KEM-768).
    When the two phones' first choices differ, the numerically lower bzrtp code wins, so a
    post-quantum one is used only when both list it first; X255 next keeps X25519 with phones
    that have none (`pidphone check-config` explains the list it is given)."""
    cipher: tuple[str, ...] = field(
        default=("AES3", "AES1"), metadata=_zrtp_list(checks.ZRTP_CIPHERS, "ZRTP cipher")
    )
    """SRTP cipher types (§5.1.3): AES1 (AES-128), AES3 (AES-256)."""
    auth_tag: tuple[str, ...] = field(
        default=("HS80", "HS32", "GCM"),
        metadata=_zrtp_list(checks.ZRTP_AUTH_TAGS, "ZRTP auth tag"),
    )
    """SRTP authentication tags (§5.1.4): HS80 (HMAC-SHA1 80 bits), HS32 (32 bits), GCM (SRTP
    AEAD AES-GCM, RFC 7714, as bzrtp 5.5 offers it first)."""
    hash: tuple[str, ...] = field(
        default=("S256", "S384"), metadata=_zrtp_list(checks.ZRTP_HASHES, "ZRTP hash")
    )
    """Hash types (§5.1.2): S256 (SHA-256), S384 (SHA-384, required by EC38), S512 (SHA-512,
    as Linphone's bzrtp 5.5 offers it)."""
    sas: tuple[str, ...] = field(
        default=("B32", "B256"), metadata=_zrtp_list(checks.ZRTP_SAS_TYPES, "ZRTP SAS type")
    )
    """SAS renderings (§5.1.6): B32 (four characters), B256 (two PGP words)."""
    zid_cache: str = field(default="/var/lib/pidphone/zid-cache.json", metadata=meta(path=True))
    """The ZID cache: our ZID and, per peer, the retained secrets and the SAS-verified flag
    (§4.9). Lives in systemd's StateDirectory=pidphone."""
    hello_timeout: float = field(default=12.0, metadata=meta(check=checks.between(1, 120, "s")))
    """Seconds to wait for the peer's ZRTP Hello before the call counts as NOT SECURE (§6)."""
    zrtp_mtu: int = field(default=1452, metadata=meta(check=checks.between(256, 1452, "bytes")))
    """Longest ZRTP datagram sent: a longer message (a post-quantum Commit or DHPart1, about
    1.7 kB) goes in fragments of at most this size, as Linphone sends them (its default, 1452).
    Lower it on a link with a smaller MTU (a VPN) so that no datagram is split by IP."""


@dataclass(frozen=True)
class AudioConfig:
    """[audio] — ALSA devices (names as in `aplay -L`), volumes and tones."""

    capture_device: str = "default"
    """ALSA PCM of the handset microphone, e.g. "plughw:CARD=Device,DEV=0"."""
    playback_device: str = "default"
    """ALSA PCM of the handset earpiece."""
    ring_device: str = ""
    """ALSA PCM of the ringer loudspeaker. Empty: the playback device."""
    rate: int = field(default=0, metadata=meta(check=checks.one_of(checks.AUDIO_RATES)))
    """Hz the devices always run at, the call's audio resampled to and from it (48000 for a
    USB handset behind a `plug` device, whose own converter is only linear). 0: the rate of
    the call's codec (8000 for G.711, 16000 for G.722 and Opus) where the device takes it,
    else the nearest it has."""
    mixer_card: str = "default"
    """ALSA card whose mixer sets the volume."""
    mixer_control: str = ""
    """Mixer control for the volume keys, e.g. "PCM", "Speaker". Empty: no volume control."""
    volume: int = field(default=80, metadata=meta(check=checks.between(0, 100, "%")))
    """Start-up earpiece volume in percent."""
    ring_volume: int = field(default=80, metadata=meta(check=checks.between(0, 100, "%")))
    """Ringer volume in percent."""
    tone_plan: Literal["etsi", "us"] = "etsi"
    """Dial, ringback and busy tones: "etsi" (425 Hz, Europe) or "us" (350+440 Hz)."""
    secure_tone: bool = True
    """Three high beeps in the earpiece when a call becomes secure. The six low beeps of a
    call that goes on NOT SECURE always play, before any clear audio (docs/sas.md)."""
    codecs: tuple[str, ...] = field(
        default=DEFAULT_CODECS,
        metadata=meta(check=checks.preference_list(tuple(SDP_CODECS), "codec")),
    )
    """Voice codecs offered in SDP, most preferred first: "opus" (wideband, 48 kHz), "G722"
    (wideband, 16 kHz), "PCMU" and "PCMA" (G.711, narrowband)."""


@dataclass(frozen=True)
class KeypadConfig:
    """[keypad] — the matrix keypad, the hook switch and the function keys (BCM GPIO numbers;
    see hw/wiring.md). Rows are driven, columns read with pull-ups."""

    layout: Literal["4x3", "4x4"] = "4x3"
    """4 rows of 3 keys (0-9 * #) or of 4 keys (adds A-D)."""
    rows: tuple[int, ...] = field(
        default=(5, 6, 12, 13), metadata=meta(each=checks.gpio, check=checks.nonempty)
    )
    """GPIO of each keypad row, top first."""
    cols: tuple[int, ...] = field(
        default=(16, 17, 22), metadata=meta(each=checks.gpio, check=checks.nonempty)
    )
    """GPIO of each keypad column, left first (4x4: add a fourth, e.g. 23)."""
    keymap: tuple[str, ...] = field(default=(), metadata=meta(each=checks.keymap_row))
    """One string per row, one character per key. Empty: the standard map of `layout`."""
    hook_pin: int = field(default=4, metadata=meta(check=checks.gpio))
    """GPIO of the hook switch (the other side to ground)."""
    hook_closed_when: Literal["off_hook", "on_hook"] = "off_hook"
    """When the hook switch closes: when the handset is lifted ("off_hook") or put down."""
    function_keys: Mapping[str, int] = field(
        default_factory=lambda: types.MappingProxyType({"sas_confirm": 26, "sas_reject": 27}),
        metadata=meta(each=checks.gpio),
    )
    """Function key name -> GPIO (button to ground). Names (pidphone.ports.FUNCTION_KEYS):
    sas_confirm sas_reject hold transfer mute volume_up volume_down dnd redial back answer hangup
    speed1..speed9."""
    debounce_ms: int = field(default=20, metadata=meta(check=checks.between(1, 500, "ms")))
    """Milliseconds a key or the hook must stay still before a change counts."""


@dataclass(frozen=True)
class DisplayConfig:
    """[display] — the 128x64 OLED (luma.oled), on I2C or SPI (see hw/wiring.md)."""

    driver: Literal["ssd1306", "sh1106", "none"] = "ssd1306"
    """The controller chip; "none" runs without a display."""
    bus: Literal["i2c", "spi"] = "i2c"
    i2c_port: int = field(default=1, metadata=meta(check=checks.between(0, 22)))
    """/dev/i2c-N; the header's I2C is 1."""
    i2c_address: int = field(default=0x3C, metadata=meta(check=checks.between(0x03, 0x77)))
    """7-bit address; write it in hex, 0x3C or 0x3D (`i2cdetect -y 1` shows it)."""
    spi_port: int = field(default=0, metadata=meta(check=checks.between(0, 1)))
    """/dev/spidevP.D port P: 0 (GPIO 9-11) or 1 (GPIO 19-21)."""
    spi_device: int = field(default=0, metadata=meta(check=checks.between(0, 2)))
    """Chip select D: on port 0, 0 is GPIO 8 (CE0), 1 is GPIO 7 (CE1)."""
    spi_dc_pin: int = field(default=24, metadata=meta(check=checks.gpio))
    """GPIO of the data/command line (SPI only)."""
    spi_reset_pin: int = field(default=25, metadata=meta(check=checks.gpio))
    """GPIO of the reset line (SPI only)."""
    rotation: int = field(default=0, metadata=meta(check=checks.between(0, 3)))
    """Quarter turns clockwise: 0, 1, 2, 3 (2 = upside down)."""
    contrast: int = field(default=200, metadata=meta(check=checks.between(0, 255)))
    """Brightness, 0-255."""
    dim_after: float = field(default=30.0, metadata=meta(check=checks.between(0, 86400, "s")))
    """Seconds of idle before the screen dims (burn-in protection); 0 never dims."""
    blank_after: float = field(default=300.0, metadata=meta(check=checks.between(0, 86400, "s")))
    """Seconds of idle before the screen goes dark; 0 never blanks."""


@dataclass(frozen=True)
class PhoneConfig:
    """[phone] — dialling."""

    speed_dials: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata=meta(each=checks.dial_target),
    )
    """Digit "1".."9" -> SIP address or number, dialled by holding the digit."""
    inter_digit_timeout: float = field(
        default=4.0, metadata=meta(check=checks.between(0.5, 60, "s"))
    )
    """Seconds after the last digit before a number is dialled (or press #)."""
    dial_domain: str = field(default="", metadata=meta(check=checks.optional(checks.host_port(0))))
    """Domain appended to a bare number: 1234 -> sip:1234@domain. Empty: the domain of
    account.aor."""
    contacts_file: str = field(default="", metadata=meta(path=True))
    """The phone book, relative to this file: TOML (see pidphone.config.contacts), or an
    address book's vCard export (.vcf) as it is. Empty: no phone book."""
    history_file: str = field(default="", metadata=meta(path=True))
    """Where the call history is kept across restarts (missed, received and dialled calls).
    Empty: call-history.json in the state directory, beside security.zid_cache."""
    history_size: int = field(default=100, metadata=meta(check=checks.between(1, 1000)))
    """Calls the history keeps; the oldest go first."""
    forward_always: str = field(
        default="", metadata=meta(check=checks.optional(checks.dial_target))
    )
    """Forward every call (302) to this number or SIP address; the "forward" key turns it off
    and on (and forwards to digits typed before it). Empty: no forwarding."""
    forward_busy: str = field(default="", metadata=meta(check=checks.optional(checks.dial_target)))
    """Forward a call that comes while another call is up, instead of call waiting."""
    forward_no_answer: str = field(
        default="", metadata=meta(check=checks.optional(checks.dial_target))
    )
    """Forward a call still unanswered after forward_after seconds."""
    forward_after: float = field(default=20.0, metadata=meta(check=checks.between(1, 600, "s")))
    recall_after: float = field(default=60.0, metadata=meta(check=checks.between(10, 3600, "s")))
    """Seconds a call left on hold rings back, the handset down, before the phone ends it
    ("Held call ended")."""
    """Seconds of ringing before forward_no_answer takes the call."""
    voicemail_indicator: bool = False
    """Subscribe to the voicemail box's message summary (RFC 3842) through the registrar and
    show the count of new messages on the idle screen."""
    voicemail_uri: str = field(default="", metadata=meta(check=checks.optional(checks.sip_uri)))
    """The voicemail box subscribed to, "sip:alice@example.org". Empty: account.aor."""
    voicemail_number: str = field(
        default="", metadata=meta(check=checks.optional(checks.dial_target))
    )
    """Dialled by the "voicemail" function key: a number or SIP address. Empty: the key does
    nothing."""


@dataclass(frozen=True)
class LoggingConfig:
    """[logging] — to journald under systemd, to stderr otherwise."""

    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class SimConfig:
    """[sim] — the simulated hardware (hardware = "simulated"), for the demo and tests."""

    keys_script: str = field(default="", metadata=meta(path=True))
    """A file of key and hook events the simulated keypad plays. Empty: none."""
    audio_in_file: str = field(default="", metadata=meta(path=True))
    """Raw S16_LE mono PCM at `file_rate` played into the microphone. Empty: a tone."""
    tone_frequency: float = field(
        default=1000.0, metadata=meta(check=checks.between(0, 20000, "Hz"))
    )
    """Hz of the microphone tone when there is no input file; 0 is silence (and so is a tone
    the call's rate cannot carry: 5000 Hz is heard only in a wideband call)."""
    audio_out_file: str = field(default="", metadata=meta(path=True))
    """Where the earpiece audio is written (raw S16_LE at `file_rate`). Empty: discarded."""
    file_rate: int = field(default=8000, metadata=meta(check=checks.one_of(checks.AUDIO_RATES[1:])))
    """Hz of `audio_in_file` and `audio_out_file`."""
    screens_dir: str = field(default="", metadata=meta(path=True))
    """Directory receiving a PNG per screen shown. Empty: none."""


@dataclass(frozen=True)
class Config:
    """The whole file. Top-level keys come before the first [section] in TOML."""

    hardware: Literal["pi", "simulated"] = "pi"
    """"pi": the real GPIO, ALSA and OLED; "simulated": the twins configured in [sim]."""
    account: AccountConfig = field(default_factory=AccountConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    keypad: KeypadConfig = field(default_factory=KeypadConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    phone: PhoneConfig = field(default_factory=PhoneConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    sim: SimConfig = field(default_factory=SimConfig)

    @property
    def preferences_path(self) -> str:
        """Do-not-disturb and forwarding set on the keypad: beside the ZID cache."""
        return os.path.join(os.path.dirname(self.security.zid_cache), "preferences.json")

    @property
    def history_path(self) -> str:
        """The call history's file: phone.history_file, else beside the ZID cache."""
        if self.phone.history_file:
            return self.phone.history_file
        return os.path.join(os.path.dirname(self.security.zid_cache), "call-history.json")
