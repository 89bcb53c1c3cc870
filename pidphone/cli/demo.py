"""`pidphone demo`: two simulated phones on loopback place a secure call, start to finish.

No hardware and no SIP server: throw-away certificates are made in a temporary directory, Bob
listens for SIP over TLS on 127.0.0.1 and takes calls only from certificates of that CA, and
Alice calls him directly (`sips:bob@127.0.0.1:<port>`) with a speed-dial key, presenting a
client certificate that names her (`sips:alice@127.0.0.1`). Bob answers with a key, ZRTP runs on the
media path, both phones show the same SAS, and each sends a tone through SRTP (Alice 1000 Hz,
Bob 700 Hz) from a simulated microphone paced by a real clock; what each received is decoded
and its frequency checked. The screens are printed as text and saved as PNG. Alice hangs up
and a summary follows. Exit status 0 only when all of that worked.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from PIL.Image import Resampling

from pidphone import wiring
from pidphone.app.call import Call
from pidphone.app.call_events import CallFinished, CallIncoming, CallSecure
from pidphone.app.controller import Controller, ControllerEvent
from pidphone.audio.tones import PLANS
from pidphone.drivers.certs import make_test_pki
from pidphone.drivers.draw import draw_screen
from pidphone.drivers.sim_audio import SimAudioDevices, SimPlayback
from pidphone.drivers.sim_display import PNG_SCALE, screen_text
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.ports import KeyEvent, Screen

from .call import heard_frequencies
from .common import CommandError, UsageError

log = logging.getLogger("pidphone.demo")

ALICE_TONE = 1000.0
BOB_TONE = 700.0
TONE_TOLERANCE = 25.0
"""Hz: how far the strongest received frequency may be from the tone sent."""
AUDIO_SECONDS = 3.0
"""How long the secured call carries audio before Alice hangs up."""
TIMEOUT = 12.0
"""Seconds for each step (answer, SAS) before the demo gives up."""


def earpiece(audio: SimAudioDevices) -> SimPlayback:
    """The simulated handset's earpiece, once the media worker opened it."""
    playback = audio.playbacks.get("call")
    if playback is None:
        raise DemoFailedError("the earpiece was never opened")
    return playback


# --------------------------------------------------------------------------- one phone


@dataclass
class _Phone:
    name: str
    phone: Controller
    audio: SimAudioDevices
    transport: TlsTransport
    events: list[ControllerEvent] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """The loop time each event arrived."""
    waiters: list[tuple[Callable[[ControllerEvent], bool], asyncio.Future[ControllerEvent]]] = (
        field(default_factory=list)
    )

    def on_event(self, event: ControllerEvent) -> None:
        self.events.append(event)
        self.times.append(asyncio.get_running_loop().time())
        for check, future in list(self.waiters):
            if not future.done() and check(event):
                future.set_result(event)

    def time_of(self, event: ControllerEvent) -> float:
        return self.times[self.events.index(event)]

    async def wait_for(
        self, check: Callable[[ControllerEvent], bool], what: str
    ) -> ControllerEvent:
        for event in self.events:
            if check(event):
                return event
        future: asyncio.Future[ControllerEvent] = asyncio.get_running_loop().create_future()
        self.waiters.append((check, future))
        try:
            return await asyncio.wait_for(future, TIMEOUT)
        except TimeoutError:
            raise DemoFailedError(f"{self.name}: no {what} within {TIMEOUT:.0f} s") from None

    def press(self, key: str) -> None:
        self.phone.press(KeyEvent(key))


class DemoFailedError(Exception):
    """A step of the demo did not happen; the message says which."""


async def _make_phone(
    name: str,
    tone: float,
    client: TlsClientConfig,
    server: TlsServerConfig | None,
    speed_dials: dict[str, str],
) -> _Phone:
    built = wiring.loopback_phone(
        name, tone=tone, client=client, listener=server, speed_dials=speed_dials
    )
    phone = _Phone(name, built.controller, built.audio, built.transport)
    built.controller.add_listener(phone.on_event)
    await built.controller.start()
    return phone


# --------------------------------------------------------------------------- the story


@dataclass
class DemoResult:
    sas: str = ""
    sas_scheme: str = ""
    algorithms: str = ""
    answer_to_sas: float = 0.0
    alice_heard: list[float] = field(default_factory=list)
    bob_heard: list[float] = field(default_factory=list)
    stats: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def _is_secure(event: ControllerEvent) -> bool:
    return isinstance(event, CallSecure)


class _Show:
    """Prints both phones' screens side by side and saves them as PNG."""

    def __init__(self, out: TextIO, screens_dir: Path | None) -> None:
        self.out = out
        self.dir = screens_dir
        if screens_dir is not None:
            try:
                screens_dir.mkdir(parents=True, exist_ok=True)
                probe = tempfile.NamedTemporaryFile(dir=screens_dir, suffix=".png")  # noqa: SIM115
                probe.close()
            except OSError as exc:
                raise CommandError(
                    f"cannot write the screens to {screens_dir}: {exc.strerror or exc}"
                ) from None

    def __call__(self, moment: str, alice: _Phone, bob: _Phone) -> None:
        left = screen_text(_screen(alice)).splitlines()
        right = screen_text(_screen(bob)).splitlines()
        width = max(len(row) for row in left)
        blank = " " * width
        print(f"\n  {'Alice':<{width}}   Bob", file=self.out)
        for n in range(max(len(left), len(right))):
            a = left[n] if n < len(left) else blank
            b = right[n] if n < len(right) else ""
            print(f"  {a:<{width}}   {b}", file=self.out)
        if self.dir is not None:
            for phone in (alice, bob):
                _save_png(_screen(phone), self.dir / f"{phone.name.lower()}-{moment}.png")


async def _story(out: TextIO, workdir: Path, show: _Show) -> DemoResult:
    result = DemoResult()
    pki = make_test_pki(
        workdir / "pki", ["127.0.0.1", "localhost"], client_uris=["sips:alice@127.0.0.1"]
    )
    bob_server = TlsServerConfig(
        cert_file=str(pki.server_cert),
        key_file=str(pki.server_key),
        host="127.0.0.1",
        port=0,
        ca_file=str(pki.ca_cert),
    )
    bob_client = TlsClientConfig(ca_file=str(pki.ca_cert))
    bob = await _make_phone("Bob", BOB_TONE, bob_client, bob_server, {})
    listening = bob.transport.listening
    if listening is None:
        raise DemoFailedError("Bob's TLS listener did not start")
    bob_uri = f"sips:bob@127.0.0.1:{listening[1]}"
    alice_client = TlsClientConfig(
        ca_file=str(pki.ca_cert), client_cert=str(pki.client_cert), client_key=str(pki.client_key)
    )
    alice = await _make_phone("Alice", ALICE_TONE, alice_client, None, {"1": bob_uri})
    loop = asyncio.get_running_loop()
    try:
        say = functools.partial(print, file=out)
        say(f"Certificates made in {workdir / 'pki'}; Bob takes SIP over TLS on {bob_uri}")
        say(f"Alice presses speed dial 1: {bob_uri}")
        alice.press("speed1")
        incoming = await bob.wait_for(lambda e: isinstance(e, CallIncoming), "incoming call")
        if not isinstance(incoming, CallIncoming):
            raise DemoFailedError(f"unexpected {incoming}")
        say(f"Bob's phone rings: a call from {incoming.remote_uri}")
        show("ringing", alice, bob)
        answered_at = loop.time()
        say("\nBob presses answer; ZRTP runs on the media path (RFC 6189)")
        bob.press("answer")
        secure_a = await alice.wait_for(_is_secure, "SAS")
        secure_b = await bob.wait_for(_is_secure, "SAS")
        if not (isinstance(secure_a, CallSecure) and isinstance(secure_b, CallSecure)):
            raise DemoFailedError(f"unexpected {secure_a} {secure_b}")
        result.answer_to_sas = max(alice.time_of(secure_a), bob.time_of(secure_b)) - answered_at
        za, zb = secure_a.secured, secure_b.secured
        say(f"Alice's phone shows SAS {za.sas!r}, Bob's shows {zb.sas!r}")
        if za.sas != zb.sas:
            raise DemoFailedError(f"the SAS differ: {za.sas} != {zb.sas}")
        result.sas, result.sas_scheme = za.sas, za.sas_scheme
        result.algorithms = (
            f"{za.key_agreement} {za.cipher} {za.auth_tag} {za.hash} {za.sas_scheme}"
        )
        marks = (len(earpiece(alice.audio).frames), len(earpiece(bob.audio).frames))
        await asyncio.sleep(AUDIO_SECONDS / 2)
        show("secure", alice, bob)
        say("\nThey read the SAS to each other, it matches: both press SAS-confirm")
        alice.press("sas_confirm")
        bob.press("sas_confirm")
        await asyncio.sleep(AUDIO_SECONDS / 2)
        show("verified", alice, bob)
        ears = earpiece(alice.audio), earpiece(bob.audio)
        result.alice_heard = heard_frequencies(list(ears[0].frames)[marks[0] :], ears[0].rate)
        result.bob_heard = heard_frequencies(list(ears[1].frames)[marks[1] :], ears[1].rate)
        for phone in (alice, bob):
            stats = await phone.phone.media_stats(_only_call(phone))
            result.stats[phone.name] = (
                stats.packets_sent,
                stats.packets_received,
                stats.packets_lost,
            )
        say("\nAlice hangs up")
        alice.press("hangup")
        await bob.wait_for(lambda e: isinstance(e, CallFinished), "hang-up")
        await alice.wait_for(lambda e: isinstance(e, CallFinished), "end of call")
        show("ended", alice, bob)
    finally:
        await alice.phone.stop()
        await bob.phone.stop()
    return result


def _screen(phone: _Phone) -> Screen:
    screen = phone.phone.screen()
    return screen if screen is not None else Screen()


def _only_call(phone: _Phone) -> Call:
    calls = phone.phone.calls()
    if len(calls) != 1:
        raise DemoFailedError(f"{phone.name} has {len(calls)} calls, expected one")
    return calls[0]


def _tone_ok(heard: list[float], expected: float) -> bool:
    return bool(heard) and abs(heard[0] - expected) <= TONE_TOLERANCE


def _secure_tone_note(heard: list[float]) -> str:
    """Says which heard frequency is the secure indication tone (both phones play it in the
    earpiece when the call becomes secure), so it is not taken for the peer's audio."""
    tone = PLANS["etsi"]["secure"].frequencies[0]
    if any(abs(f - tone) <= TONE_TOLERANCE for f in heard):
        return f"; {tone:.0f} Hz: the secure tone"
    return ""


def _save_png(screen: Screen, path: Path) -> None:
    image = draw_screen(screen)
    scaled = image.resize((image.width * PNG_SCALE, image.height * PNG_SCALE), Resampling.NEAREST)
    scaled.save(path)


def _report(result: DemoResult, out: TextIO, screens_dir: Path | None) -> bool:
    alice_ok = _tone_ok(result.alice_heard, BOB_TONE)
    bob_ok = _tone_ok(result.bob_heard, ALICE_TONE)
    print("\nSummary", file=out)
    print(f"  SAS ({result.sas_scheme}):        {result.sas}   (same on both phones)", file=out)
    print(f"  algorithms:        {result.algorithms}", file=out)
    print(f"  answer to SAS:     {result.answer_to_sas * 1000:.0f} ms", file=out)
    print(
        f"  Alice heard:       {result.alice_heard} Hz (Bob sent {BOB_TONE:.0f} Hz"
        f"{_secure_tone_note(result.alice_heard)})"
        f" {'ok' if alice_ok else 'WRONG'}",
        file=out,
    )
    print(
        f"  Bob heard:         {result.bob_heard} Hz (Alice sent {ALICE_TONE:.0f} Hz"
        f"{_secure_tone_note(result.bob_heard)})"
        f" {'ok' if bob_ok else 'WRONG'}",
        file=out,
    )
    for name, (sent, received, lost) in result.stats.items():
        print(
            f"  {name + ':':<18} {sent} SRTP packets sent, {received} received, {lost} lost",
            file=out,
        )
    if screens_dir is not None:
        print(f"  screens saved in:  {screens_dir}", file=out)
    return alice_ok and bob_ok


def run_demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the demo; 0 when the call was secured and both tones arrived."""
    if getattr(args, "config", None) is not None:
        raise UsageError("demo runs two simulated phones of its own and reads no config: drop -c")
    screens: Path = getattr(args, "screens", None) or Path(
        tempfile.mkdtemp(prefix="pidphone-demo-screens-")  # a fresh one each time, printed
    )
    with tempfile.TemporaryDirectory(prefix="pidphone-demo-") as tmp:
        try:
            show = _Show(out, screens)
            result = asyncio.run(asyncio.wait_for(_story(out, Path(tmp), show), 4 * TIMEOUT))
        except DemoFailedError as exc:
            print(f"demo failed: {exc}", file=out)
            return 1
        except TimeoutError:
            print("demo failed: it took too long", file=out)
            return 1
    return 0 if _report(result, out, screens) else 1
