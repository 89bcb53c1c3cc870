"""The seams between the phone and the world: Protocols and the value types that cross them.

Everything above (`pidphone.app`) talks to hardware and the network only through these
interfaces; everything in `pidphone.drivers` implements one of them, each with a simulated twin.
No implementations live here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from pidphone.sip.callers import PeerCertificate

Address = tuple[str, int]
"""A (host, port) pair; host is an IP literal or a DNS name."""

# --------------------------------------------------------------------------- audio

SAMPLE_RATE = 8000
"""The narrowband rate (G.711), at which devices open unless asked for another: a call's
frames cross the audio ports at its codec's rate (8000, 16000 or 48000 Hz), the ringer's at
this one."""

FRAME_TIME = 0.02
"""One frame, the packetization and the device period: 20 ms whatever the rate."""

FRAME_SAMPLES = 160
"""One 20 ms frame at 8 kHz."""

FRAME_BYTES = FRAME_SAMPLES * 2
"""Signed 16-bit little-endian mono."""


def frame_bytes(rate: int) -> int:
    """Bytes of one 20 ms S16_LE mono frame at `rate` Hz."""
    return rate // 50 * 2


class AudioCapture(Protocol):
    """The handset microphone, and the media clock: the media worker waits (in its one
    `select`) until `next_frame_at()`, then `read_frame` returns at once."""

    @property
    def rate(self) -> int:
        """Samples per second of the frames `read_frame` gives (the rate it was opened at)."""
        ...

    @property
    def device_rate(self) -> int:
        """Samples per second the device itself runs at (`rate`, unless it is resampled)."""
        ...

    def next_frame_at(self) -> float:
        """When the next frame is captured, in `time.monotonic()` seconds; when one is
        already waiting, when it was complete (in the past: how late its reader is)."""
        ...

    def read_frame(self) -> bytes:
        """One 20 ms frame of S16_LE mono PCM; blocks only when called before it is due."""
        ...

    def close(self) -> None: ...


class AudioPlayback(Protocol):
    """The handset earpiece or the ringer speaker: a device buffer of a few periods. The media
    worker writes one frame per capture tick (one device clock), a period or two ahead, so
    `write_frame` does not block; a writer that runs ahead (the ringer) blocks while the
    buffer is full, which paces it."""

    @property
    def rate(self) -> int:
        """Samples per second of the frames `write_frame` takes (the rate it was opened at)."""
        ...

    @property
    def device_rate(self) -> int:
        """Samples per second the device itself runs at (`rate`, unless it is resampled)."""
        ...

    def write_frame(self, pcm: bytes) -> None:
        """Queue one 20 ms frame of S16_LE mono PCM."""
        ...

    def close(self) -> None: ...


AudioPurpose = Literal["call", "ring"]


class AudioDevices(Protocol):
    """Opens the capture and playback streams named in the config."""

    def open_capture(self, rate: int = SAMPLE_RATE) -> AudioCapture:
        """The microphone, giving frames at `rate` Hz: the device runs at that rate where it
        can, and the driver resamples otherwise."""
        ...

    def open_playback(
        self, purpose: AudioPurpose = "call", rate: int = SAMPLE_RATE
    ) -> AudioPlayback:
        """The earpiece (or the ringer), taking frames at `rate` Hz (resampled as above)."""
        ...

    def set_volume(self, percent: int) -> None: ...


# --------------------------------------------------------------------------- keys and hook

KEYPAD_KEYS = "0123456789*#ABCD"
"""The keys a keypad matrix may have: the digits, * and #, and A-D on a 4x4 pad."""
STANDARD_KEYMAPS: dict[int, tuple[str, ...]] = {
    3: ("123", "456", "789", "*0#"),
    4: ("123A", "456B", "789C", "*0#D"),
}
"""The usual 4x3 and 4x4 keypads, top row first, by their number of columns."""
FUNCTION_KEYS = (
    "sas_confirm",
    "sas_reject",
    "hold",
    "transfer",
    "mute",
    "volume_up",
    "volume_down",
    "dnd",
    "redial",
    "voicemail",
    "history",
    "contacts",
    "forward",
    "back",
    "answer",
    "hangup",
    *(f"speed{n}" for n in range(1, 10)),
)
"""The function keys a phone may have, by the name their `KeyEvent` carries."""


@dataclass(frozen=True)
class KeyEvent:
    """A key of the keypad or a function key went down (`pressed`) or up.

    `key` is one of `KEYPAD_KEYS` as the keymap names it, or one of `FUNCTION_KEYS`.
    `repeat` is true for auto-repeat.
    """

    key: str
    pressed: bool = True
    repeat: bool = False


@dataclass(frozen=True)
class HookEvent:
    """The handset was lifted (`off_hook=True`) or put down."""

    off_hook: bool


InputEvent = KeyEvent | HookEvent


class Keypad(Protocol):
    """The keypad, the hook switch and the function keys.

    `start` delivers events through `sink`; real drivers call it from their own threads, so the
    sink given by the app must be thread-safe (it hands over with `call_soon_threadsafe`).
    """

    def start(self, sink: Callable[[InputEvent], None]) -> None: ...

    def off_hook(self) -> bool:
        """The hook switch state right now (read at start-up)."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- call history

CallKind = Literal["missed", "received", "dialled"]


@dataclass(frozen=True)
class CallRecord:
    """One call in the history, as the phone keeps it across restarts."""

    kind: CallKind
    number: str
    """What calling back dials: the number or SIP URI."""
    name: str
    """The caller's display name as it came (or the contact's), "" if none."""
    time: float
    """When the call began (or rang), seconds since the epoch."""
    duration: float
    """Seconds connected; 0 for a call that never was."""
    secure: bool
    """ZRTP secured the call's audio."""
    verified: bool
    """The SAS was verified (confirmed aloud, or known from an earlier call)."""


class CallLog(Protocol):
    """Where the call history lives between two runs of the phone."""

    def load(self) -> tuple[CallRecord, ...]:
        """The calls kept, newest first (none if the store is empty or unreadable)."""
        ...

    def save(self, records: tuple[CallRecord, ...]) -> None:
        """Keep `records` (newest first) in place of what was kept; never raises."""
        ...


# --------------------------------------------------------------------------- preferences


@dataclass(frozen=True)
class Preferences:
    """What the person set on the keypad that outlives a restart."""

    dnd: bool = False
    forward_to: str = ""
    """Every call forwarded to this number or SIP address; "" for none."""


class PreferencesStore(Protocol):
    """Where `Preferences` live between two runs of the phone."""

    def load(self) -> Preferences | None:
        """The preferences kept, or None when none were (or the store is unreadable)."""
        ...

    def save(self, preferences: Preferences) -> None:
        """Keep `preferences`; never raises."""
        ...


# --------------------------------------------------------------------------- phone book


@dataclass(frozen=True)
class Contact:
    """One entry of the phone book."""

    name: str
    numbers: tuple[str, ...]
    """Numbers or SIP URIs, the first one dialled."""
    zid: bytes | None = None
    """The ZRTP identity (96-bit ZID) of this person's phone, once verified: a call from one
    of `numbers` with another ZID is an identity change, not a stranger."""


# --------------------------------------------------------------------------- display


@dataclass(frozen=True)
class Screen:
    """What the 128x64 display shows, as data: the pure `render(state)` makes it, a display
    driver draws it. Comparing two Screens is comparing two pictures.

    The layout has a status bar (left text plus icons), a title, a few small lines and an
    optional line in large type (the SAS, or NOT SECURE).
    """

    status: str = ""
    """Left of the status bar: account or clock."""
    icons: frozenset[str] = frozenset()
    """Status-bar icons by name: "registered", "unregistered", "secure", "insecure", "muted",
    "hold", "dnd", "tls_error", "voicemail", and "pq" beside "secure" when the key agreement
    was post-quantum."""
    title: str = ""
    """One line under the status bar: "Idle", "Calling", "In call 01:23", ..."""
    lines: tuple[str, ...] = ()
    """Small-type lines (peer name and number, reasons, hints)."""
    big: str = ""
    """Large type: the SAS ("4jw5", "aardvark:bifocals", drawn one word a row) or "NOT SECURE"."""
    big_inverse: bool = False
    """Draw `big` white on black (NOT SECURE)."""
    verified: bool = False
    """Show the verified mark beside the SAS."""
    alert: bool = False
    """Whole screen inverse: the cached-secret mismatch warning and hard errors."""
    brightness: Literal["normal", "dim", "off"] = "normal"
    """Burn-in protection: the display dims, then blanks, when idle."""


class Display(Protocol):
    """The OLED (or its simulated twin)."""

    def show(self, screen: Screen) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class DeviceHealth(Protocol):
    """A device driver that keeps going through its device's faults (dropping what it cannot
    deliver and reopening later) says here why the device is down, so that the phone can
    show it instead of staying silent or blank. Optional: a driver without it is taken to
    raise its faults."""

    @property
    def fault(self) -> str | None:
        """Why the device does not work now (one line, no secret); None while it works."""
        ...


# --------------------------------------------------------------------------- network


class DatagramSocket(Protocol):
    """The one UDP socket of a call: RTP, RTCP, ZRTP and STUN share it (RFC 7983). The media
    worker opens it, waits on its `fileno()` in its selector and is its only user."""

    @property
    def local(self) -> Address: ...

    def fileno(self) -> int: ...

    def sendto(self, data: bytes, addr: Address) -> str | None:
        """Send now; a full buffer or an ICMP error drops the datagram (media is best effort).
        Returns the system's reason when it refused the datagram (so that a socket that can
        send nothing is named as our fault, not the peer's), or None."""
        ...

    def receive(self, limit: int) -> list[tuple[bytes, Address, float]]:
        """The datagrams waiting now, at most `limit`, each with when it arrived (on the
        `time.monotonic` clock; at the latest, now); never blocks."""
        ...

    def close(self) -> None: ...


OpenDatagramSocket = Callable[[str, int], DatagramSocket]
"""Binds a UDP socket on (host, port); port 0 takes any free port. Raises OSError."""

LocalAddress = Callable[[str], Awaitable[str]]
"""The local IP address that routes towards a host (asked on the loop)."""


# --------------------------------------------------------------------------- service


class ServiceNotifier(Protocol):
    """The service manager (systemd's sd_notify, or nothing)."""

    def ready(self) -> None: ...

    def status(self, text: str) -> None: ...

    def watchdog(self) -> None: ...

    def stopping(self) -> None: ...

    def reloading(self) -> None:
        """The config is being read again (SIGHUP); `ready()` says it is done."""
        ...

    def watchdog_interval(self) -> float | None:
        """Half of WATCHDOG_USEC in seconds, or None when no watchdog is asked for."""
        ...


# --------------------------------------------------------------------------- SIP transport


@dataclass(frozen=True)
class LinkError:
    """Why a SIP connection could not be opened or was lost."""

    reason: str
    """One word or two a person can act on: "untrusted", "expired", "not yet valid",
    "wrong host", "pin mismatch", "handshake failed", "refused" (the host answered, nothing
    listens), "unreachable" (no route), "timeout", "reset"."""
    detail: str = ""
    """The full message, for the log."""


class SipTransportHandler(Protocol):
    """What a SIP transport reports to (the signalling runner). Called on the event loop."""

    def connection_made(
        self, peer: Address, local: Address, certificate: PeerCertificate | None = None
    ) -> None:
        """The flow to `peer` is up; for one a peer opened to the listener, `certificate` is
        what TLS verified of the client (None without one)."""
        ...

    def data_received(self, data: bytes, peer: Address) -> None: ...

    def connection_lost(self, peer: Address, error: LinkError | None) -> None:
        """The flow to `peer` closed (`error` None: closed in order) or never opened."""
        ...


class SipTransport(Protocol):
    """Byte-stream flows to SIP peers, keyed by the peer's (host, port) (RFC 5626 "flows").

    `send` to a peer without a flow opens one; the bytes go out once it is up (and, over TLS,
    only after the peer is verified). Accepted connections report under the peer's address."""

    async def start(self, handler: SipTransportHandler) -> None:
        """Begin reporting to `handler`; open the listener if there is one."""
        ...

    def connect(self, peer: Address) -> None:
        """Open a flow to `peer` now if there is none (reconnecting the registrar flow)."""
        ...

    def send(self, data: bytes, peer: Address) -> None: ...

    def close(self, peer: Address) -> None: ...

    async def aclose(self) -> None:
        """Close every flow and the listener."""
        ...
