"""`pidphone call URI` and `pidphone answer`: one real call from the command line, reported.

They check a line after provisioning, and they are how tests and benchmarks drive pidphone
against other phones. Both use the configured account (registering first when it has a
registrar) or, with no account, call directly (`sips:bob@192.0.2.7:5061`) and take direct
calls on `server.listen`. The call's progress goes to stdout as lines; with `--json` it goes
to stderr, and stdout gets one JSON object per call at the end (state, reason, SAS,
algorithms, packet counts, received tone frequencies). With simulated hardware the microphone
sends `sim.tone_frequency` and the report names the frequencies received.

`pidphone call URI --transfer-to TARGET [--attended]` transfers the peer once the call is
secure (REFER; attended: the call held, TARGET called first, then joined with Replaces) and
reports the outcome in `transfer`. `pidphone answer` follows the calls a transfer brings in
too (one the peer transferred this phone into, or one that replaces a call here): each is a
call of its own in the count, with its own report (`via` says how it came).

The last line (and the JSON's "state" and "reason") says how each call ended, and the exit
status says it for scripts (with several calls, the worst of them):

  0  secure
  4  secure, but with a cached-secret mismatch: compare the SAS (`pidphone zid verify`)
  3  answered but not secure: NOT SECURE (the "prefer" policy went on in the clear), or
     security failed or was lost
  1  failed: no call (registration failed, refused, busy, no answer, unreachable), or a
     transfer asked for that failed
  2  usage: a bad argument (a number without a host and no account, --duration 0)
 78  configuration error

The JSON's "ok" says whether the call was secured as the policy demands (under "prefer" a call
that stayed NOT SECURE counts).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, TextIO

from pidphone import wiring
from pidphone.app.call import Call
from pidphone.app.call_events import (
    CallConnected,
    CallEvent,
    CallFinished,
    CallForwarded,
    CallIncoming,
    CallInsecure,
    CallMismatch,
    CallReferred,
    CallReplaced,
    CallRinging,
    CallSecure,
    CallSecurityFailed,
    CallSecurityLost,
    CallTransferEnded,
    CallTransferProgress,
)
from pidphone.app.call_state import CallState
from pidphone.app.controller import ControllerEvent
from pidphone.app.media_events import MediaStats
from pidphone.app.phone_events import MediaFault, RegistrationChanged
from pidphone.app.signalling import LinkFailed
from pidphone.audio.analysis import dominant_frequencies
from pidphone.audio.codec import audio_rate
from pidphone.config import Config, load_config
from pidphone.drivers.sim_audio import SimAudioDevices, SimPlayback
from pidphone.errors import ConfigError, ProtocolError
from pidphone.ports import frame_bytes

from .common import (
    EXIT_FAILURE,
    EXIT_MISMATCH,
    EXIT_NOT_SECURE,
    EXIT_OK,
    UsageError,
    config_path,
    warn,
)

DEFAULT_DURATION = 10.0
"""Seconds a call lasts after it is answered, unless the peer hangs up first."""
REGISTER_TIMEOUT = 15.0
ANSWER_TIMEOUT = 60.0
"""Seconds an outgoing call may ring before it is given up."""


class CallOutcome(StrEnum):
    """How a call ended up, as the report says it."""

    SECURE = "secure"
    INSECURE = "insecure"
    """The "prefer" policy's NOT SECURE call."""
    UNSECURED = "unsecured"
    """Connected, with no security outcome."""
    FAILED = "failed"


@dataclass
class CallReport:
    """What `--json` prints for one call."""

    state: CallOutcome = CallOutcome.FAILED
    reason: str = ""
    call_id: str = ""
    remote: str = ""
    codec: str = ""
    """The negotiated codec's SDP name ("opus", "G722", "PCMU", "PCMA")."""
    rate: int = 0
    """Hz of the call's audio (8000 narrowband, 16000 wideband)."""
    clock_rate: int = 0
    """The codec's RTP clock rate (48000 for Opus, 8000 for G.722 and G.711)."""
    wideband: bool = False
    """The call carries wideband audio ("HD" on the screen)."""
    sas: str = ""
    sas_scheme: str = ""
    verified: bool = False
    cipher: str = ""
    key_agreement: str = ""
    hash: str = ""
    auth_tag: str = ""
    cache_mismatch: bool = False
    post_quantum: bool = False
    """The key agreement was post-quantum (X3M3, MLK3, MLK2): a recording of the call stays
    secret even from a future quantum computer."""
    peer_zid: str = ""
    """The peer's ZID in hex, as `pidphone zid verify` takes it."""
    answer_to_sas_ms: float | None = None
    duration: float = 0.0
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    rtcp_sent: int = 0
    rtcp_received: int = 0
    dropped: int = 0
    """Datagrams dropped: failed SRTP authentication, replays, refused clear RTP."""
    drops: dict[str, int] = field(default_factory=dict)
    """Dropped datagrams by reason (`pidphone.app.media.DROP_REASONS`, "zrtp_<reason>")."""
    clear_packets_sent: int = 0
    """RTP packets sent without SRTP (only under "prefer", for a peer without ZRTP)."""
    security_lost: str = ""
    """Why a call that was secure lost its security (audio stopped), if it did."""
    playout: dict[str, float] = field(default_factory=dict)
    """The jitter buffer's count of late packets, lost, concealed and dropped frames and
    resyncs, and its target delay in ms when the call ended; the frames our own lateness cost
    (not written to the earpiece, never captured)."""
    received_frequencies: list[float] = field(default_factory=list)
    transfer: str = ""
    """As transferor: "Transferred", or "Transfer failed: <reason>"."""
    consultation_sas: str = ""
    """As transferor of an attended transfer: the SAS of the call to the target."""
    via: str = ""
    """How a call `answer` followed came: "" (it rang), "referred" (the peer transferred us
    into it) or "replaced" (a transfer joined its caller to us in place of another call)."""
    ok: bool = False


# --------------------------------------------------------------------------- reports


HEARD_FRAMES = 250
"""The last 5 s of what was played are analysed: enough for a tone, cheap on a long call."""


def heard_frequencies(frames: list[bytes], rate: int, count: int = 2) -> list[float]:
    """The strongest tones in the last seconds played at `rate`, rounded to the hertz."""
    size = frame_bytes(rate)
    pcm = b"".join(f for f in frames[-HEARD_FRAMES:] if len(f) == size)
    return [round(f) for f in dominant_frequencies(pcm, rate, count=count)] if pcm else []


# --------------------------------------------------------------------------- one run


class _Session:
    """A headless phone with a listener that prints progress and collects events per call."""

    def __init__(self, config: Config, out: TextIO, as_json: bool) -> None:
        self.config = config
        self.out = out
        self.as_json = as_json
        self.events: list[tuple[float, ControllerEvent]] = []
        self.changed = asyncio.Event()
        audio = wiring.audio_devices(config)
        self.simulated = audio if isinstance(audio, SimAudioDevices) else None
        self.phone = wiring.headless_controller(config, audio)
        self.phone.add_listener(self._on_event)

    def say(self, text: str) -> None:
        """A progress line: on stdout, or on stderr when stdout is for the JSON report."""
        print(text, file=sys.stderr if self.as_json else self.out, flush=True)

    def _on_event(self, event: ControllerEvent) -> None:
        self.events.append((time.monotonic(), event))
        self.changed.set()
        line = describe(event)
        if line:
            self.say(line)

    async def wait(
        self, check: Callable[[ControllerEvent], bool], timeout: float
    ) -> ControllerEvent | None:
        """The first event (seen or to come) that passes `check`, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for _, event in self.events[seen:]:
                if check(event):
                    return event
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return None

    async def register(self) -> bool:
        if self.phone.agent.config.registrar is None:
            return True
        event = await self.wait(
            lambda e: isinstance(e, RegistrationChanged) and e.state != "registering",
            REGISTER_TIMEOUT,
        )
        return isinstance(event, RegistrationChanged) and event.state == "registered"

    def _earpieces(self) -> list[SimPlayback]:
        return self.simulated.earpieces if self.simulated is not None else []

    def _heard(self, since: int, mark: int, rate: int) -> list[float]:
        """The tones played from the answer on: in the earpiece open then (after its first
        `mark` frames) and those opened since (`since` were open before), at the call's rate
        (the worker reopens the earpiece at the codec's rate, and back when the call ends)."""
        frames: list[bytes] = []
        for n, earpiece in enumerate(self._earpieces()[max(0, since - 1) :], max(0, since - 1)):
            if earpiece.rate == rate:
                frames += list(earpiece.frames)[mark if n == since - 1 else 0 :]
        return heard_frequencies(frames, rate)

    async def follow(self, call: Call, duration: float, report: CallReport) -> None:
        """Wait for the answer, then `duration` seconds or the end, then hang up."""
        cid = call.call_id

        def mine(kind: type[CallEvent]) -> Callable[[ControllerEvent], bool]:
            return lambda e: isinstance(e, kind) and e.call_id == cid

        def ended(e: ControllerEvent) -> bool:
            return isinstance(e, CallFinished) and e.call_id == cid

        connected = await self.wait(lambda e: mine(CallConnected)(e) or ended(e), ANSWER_TIMEOUT)
        if connected is None:
            self.phone.hangup(cid, "No answer")
        elif isinstance(connected, CallConnected):
            earpieces = self._earpieces()
            since, mark = len(earpieces), len(earpieces[-1].frames) if earpieces else 0
            answered = time.monotonic()
            await self.wait(ended, duration)
            report.duration = round(time.monotonic() - answered, 2)
            params = call.media_params
            if self.simulated is not None and params is not None:
                rate = audio_rate(params.codec)
                report.received_frequencies = self._heard(since, mark, rate)
            if call.state != CallState.ENDED:
                self.phone.hangup(cid, "Hung up")
        await self.wait(ended, 5.0)
        try:
            stats = await asyncio.wait_for(self.phone.media_stats(call), 5.0)
        except TimeoutError:
            stats = call.stats
        events = [e for _, e in self.events if getattr(e, "call_id", "") == cid]
        fill_report(report, call, stats, events)
        problems = [e for _, e in self.events if isinstance(e, LinkFailed)]
        if problems and not report.ok:
            report.reason += f" (TLS: {problems[-1].reason})"

    async def transfer(self, call: Call, args: argparse.Namespace, report: CallReport) -> None:
        """Once `call` is secure, transfer its peer to `args.transfer_to` (attended: after a
        secure call to the target) and report the outcome."""
        cid = call.call_id
        target = str(args.transfer_to)
        after = float(getattr(args, "transfer_after", 2.0))

        def about(kind: type[CallEvent], call_id: str) -> Callable[[ControllerEvent], bool]:
            return lambda e: isinstance(e, kind | CallFinished) and e.call_id == call_id

        secure = await self.wait(about(CallSecure, cid), ANSWER_TIMEOUT)
        if isinstance(secure, CallSecure):
            await asyncio.sleep(after)
            earpieces = self._earpieces()  # the last one opened plays the call now
            if earpieces:
                report.received_frequencies = heard_frequencies(
                    list(earpieces[-1].frames), earpieces[-1].rate
                )
            if not args.attended:
                self.phone.transfer(cid, target)
            else:
                self.phone.hold(cid, True)
                consultation = await self.phone.place_call(target)
                talked = await self.wait(about(CallSecure, consultation.call_id), ANSWER_TIMEOUT)
                if isinstance(talked, CallSecure):
                    report.consultation_sas = talked.secured.sas
                    await asyncio.sleep(after)
                    self.phone.transfer_to_call(cid, consultation.call_id)
                else:
                    report.transfer = "Transfer failed: the target's call was not secured"
                    self.phone.hangup(consultation.call_id)
            if not report.transfer:
                ended = await self.wait(about(CallTransferEnded, cid), ANSWER_TIMEOUT)
                if isinstance(ended, CallTransferEnded) and ended.ended.succeeded:
                    report.transfer = "Transferred"
                elif isinstance(ended, CallTransferEnded):
                    report.transfer = f"Transfer failed: {ended.ended.reason}"
                else:
                    report.transfer = "Transfer failed: no outcome"
        if call.state != CallState.ENDED:
            await asyncio.sleep(after if report.transfer != "Transferred" else 0)
            self.phone.hangup(cid, "Hung up")
        heard = report.received_frequencies
        await self.follow(call, 0.0, report)
        report.received_frequencies = heard or report.received_frequencies
        report.ok = report.ok and report.transfer == "Transferred"


def describe(event: ControllerEvent) -> str:
    """The progress line for an event ("" when it needs none)."""
    if isinstance(event, RegistrationChanged):
        return f"registration: {event.state}" + (f" ({event.reason})" if event.reason else "")
    if isinstance(event, LinkFailed):
        return f"TLS connection to {event.peer[0]}:{event.peer[1]} failed: {event.reason}"
    if isinstance(event, CallIncoming):
        name = f'"{event.remote_name}" ' if event.remote_name else ""
        return f"incoming call from {name}{event.remote_uri}"
    if isinstance(event, CallForwarded):
        redirected = event.redirected
        return f"forwarded ({redirected.status}): calling {redirected.target}"
    if isinstance(event, CallRinging):
        return "ringing"
    if isinstance(event, CallConnected):
        return "answered; ZRTP key agreement on the media path"
    if isinstance(event, CallSecure):
        z = event.secured
        mark = " (verified)" if z.verified else ""
        pq = " PQ" if z.post_quantum else ""
        return (
            f"SECURE{pq}  SAS {z.sas} ({z.sas_scheme}){mark}  "
            f"{z.key_agreement} {z.cipher} {z.auth_tag} {z.hash}"
        )
    if isinstance(event, CallInsecure):
        return f"NOT SECURE: {event.failure.reason}"
    if isinstance(event, CallMismatch):
        return "WARNING: cached secret mismatch: possible man in the middle, verify the SAS"
    if isinstance(event, CallSecurityLost):
        return f"security lost: {event.lost.reason}"
    if isinstance(event, CallSecurityFailed):
        code = f" (Error 0x{event.failure.code:x})" if event.failure.code else ""
        return f"NOT SECURE, ending the call: {event.failure.reason}{code}"
    if isinstance(event, CallTransferProgress):
        return f"transfer: {event.progress.status} {event.progress.reason}"
    if isinstance(event, CallTransferEnded):
        ended = event.ended
        return "transferred" if ended.succeeded else f"transfer failed: {ended.reason}"
    if isinstance(event, CallReferred):
        return f"transferred by the peer: calling {event.target}"
    if isinstance(event, CallReplaced):
        return f"call replaced by one from {event.remote_uri}"
    if isinstance(event, CallFinished):
        return f"call ended: {event.reason}"
    if isinstance(event, MediaFault):
        return f"audio failed: {event.reason}"
    return ""


def fill_report(
    report: CallReport, call: Call, stats: MediaStats, events: list[ControllerEvent]
) -> None:
    report.call_id = call.call_id
    report.remote = call.remote_uri
    params = call.media_params
    if params is not None:
        report.codec, report.clock_rate = params.codec, params.clock_rate
        report.rate, report.wideband = audio_rate(params.codec), params.wideband
    report.packets_sent = stats.packets_sent
    report.packets_received = stats.packets_received
    report.packets_lost = stats.packets_lost
    report.rtcp_sent, report.rtcp_received = stats.rtcp_sent, stats.rtcp_received
    report.dropped = stats.dropped
    report.drops = dict(stats.drops)
    report.clear_packets_sent = stats.clear_packets_sent
    report.playout = {
        "late": stats.playout_late,
        "lost": stats.playout_lost,
        "concealed": stats.playout_concealed,
        "dropped": stats.playout_dropped,
        "resyncs": stats.playout_resyncs,
        "delay_ms": round(stats.playout_delay * 1000, 1),
        "earpiece_late": stats.earpiece_late,
        "capture_skipped": stats.capture_skipped,
    }
    lost = [e for e in events if isinstance(e, CallSecurityLost)]
    report.security_lost = lost[-1].lost.reason if lost else ""
    secured = call.secured
    connected = any(isinstance(e, CallConnected) for e in events)
    if secured is not None:
        report.state = CallOutcome.SECURE
        report.sas, report.sas_scheme = secured.sas, secured.sas_scheme
        report.verified = secured.verified
        report.cipher, report.auth_tag = secured.cipher, secured.auth_tag
        report.key_agreement, report.hash = secured.key_agreement, secured.hash
        report.cache_mismatch = secured.cache_mismatch
        report.post_quantum = secured.post_quantum
        report.peer_zid = secured.peer_zid.hex()
        if call.answered_at is not None and call.secured_at is not None:
            report.answer_to_sas_ms = round((call.secured_at - call.answered_at) * 1000, 1)
    elif any(isinstance(e, CallInsecure) for e in events):
        report.state = CallOutcome.INSECURE
    elif connected:
        report.state = CallOutcome.UNSECURED
    finished = [e for e in events if isinstance(e, CallFinished)]
    report.reason = finished[-1].reason if finished else call.end_reason
    policy = call.settings.media.policy
    report.ok = (report.state == CallOutcome.SECURE and not report.security_lost) or (
        policy == "prefer" and report.state == CallOutcome.INSECURE
    )


def _print_report(session: _Session, report: CallReport) -> None:
    if session.as_json:
        print(json.dumps(asdict(report)), file=session.out, flush=True)
        return
    session.say(
        f"media: {report.packets_sent} packets sent, {report.packets_received} received, "
        f"{report.packets_lost} lost; RTCP {report.rtcp_sent} sent, {report.rtcp_received} "
        f"received; {report.dropped} dropped"
    )
    if report.received_frequencies:
        freqs = ", ".join(f"{f:.0f} Hz" for f in report.received_frequencies)
        session.say(f"received tones: {freqs}")
    reason = f": {report.reason}" if report.reason else ""
    if report.ok and report.cache_mismatch:
        session.say(f"result: SECURE, CACHED SECRET MISMATCH: compare the SAS{reason}")
    elif report.ok:
        session.say(f"result: OK ({report.state}){reason}")
    else:
        session.say(f"result: FAILED ({report.state}){reason}")


SEVERITY = (EXIT_OK, EXIT_MISMATCH, EXIT_NOT_SECURE, EXIT_FAILURE)
"""Exit statuses from best to worst: with several calls, the worst one is the command's."""


def exit_status(report: CallReport) -> int:
    """What a script tests: see the module's docstring."""
    if report.state == "secure" and not report.security_lost:
        if not report.ok:  # secure, but what was asked of it failed (a transfer)
            return EXIT_FAILURE
        return EXIT_MISMATCH if report.cache_mismatch else EXIT_OK
    if report.state in {"secure", "insecure", "unsecured"}:
        return EXIT_NOT_SECURE
    return EXIT_FAILURE


def worst(statuses: list[int]) -> int:
    return max(statuses, key=SEVERITY.index, default=EXIT_OK)


def check_target(text: str, config: Config) -> None:
    """A usage error unless `text` is something a call can go to: a SIP address with a host,
    or a number (or user name) that the account's domain or `phone.dial_domain` completes."""
    target = text.strip()
    if not target or any(c.isspace() or ord(c) < 32 for c in target):
        raise UsageError(f"{text!r} is neither a SIP address nor a number")
    if target.lower().startswith(("sip:", "sips:")) or "@" in target:
        return
    if not config.account.aor and not config.phone.dial_domain:
        raise UsageError(
            f"{target!r} has no host and there is no account to complete it: call a whole"
            f" address (sips:{target}@192.0.2.7:5061), or set account.aor or phone.dial_domain"
        )


async def _call(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    session = _Session(config, out, bool(getattr(args, "json", False)))
    report = CallReport(remote=args.uri)
    if not await _start(session):
        return EXIT_FAILURE
    try:
        if not await session.register():
            report.reason = "registration failed"
        else:
            session.say(f"calling {args.uri}")
            try:
                call = await session.phone.place_call(args.uri)
            except ProtocolError as exc:
                report.reason = str(exc)
            else:
                target = getattr(args, "transfer_to", None)
                if target:
                    await session.transfer(call, args, report)
                else:
                    await session.follow(call, _duration(args), report)
    except asyncio.CancelledError:
        report.reason = report.reason or "stopped (SIGTERM)"
    finally:
        await session.phone.stop()  # hangs up and unregisters
    _print_report(session, report)
    return exit_status(report)


async def _until_sigterm(work: Coroutine[Any, Any, int]) -> int:
    """Run a command so that SIGTERM cancels it: it hangs up and unregisters on the way out
    (without this the process died with its registration still in the registrar); a second
    SIGTERM waits for that to end."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)

    def stop() -> None:
        task.cancel()
        loop.add_signal_handler(signal.SIGTERM, lambda: None)

    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _start(session: _Session) -> bool:
    """Start the phone; a port in use or a device that cannot open is reported, not raised."""
    try:
        await session.phone.start()
    except OSError as exc:
        print(f"pidphone: cannot start the phone: {exc}", file=sys.stderr)
        await session.phone.stop()
        return False
    # Start-up's objects live as long as the command: keep the collector off them, so the
    # collections a call's allocations trigger do not walk them every time.
    gc.freeze()
    return True


async def _answer(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    if not config.account.aor and not config.server.listen:
        raise ConfigError(
            "server.listen", "no call can reach this phone: set account.aor or server.listen"
        )
    session = _Session(config, out, bool(getattr(args, "json", False)))
    count = int(getattr(args, "count", 1) or 1)
    statuses: list[int] = []
    if not await _start(session):
        return EXIT_FAILURE
    try:
        if not await session.register():
            report = CallReport(reason="registration failed")
            _print_report(session, report)
            return EXIT_FAILURE
        session.say("waiting for calls")
        seen: set[str] = set()

        def new_call(e: ControllerEvent) -> bool:
            # a call brought in, or an offer refused at once (488, 400): it ends before it is
            # ever announced, and counts too
            brought = _brought_in(e) or (e.call_id if isinstance(e, CallFinished) else "")
            return brought != "" and brought not in seen

        for _ in range(count):
            event = await session.wait(new_call, float("inf"))
            if event is None:
                break
            call_id = _brought_in(event) or getattr(event, "call_id", "")
            seen.add(call_id)
            call = session.phone.call(call_id)
            report = CallReport(remote=call.remote_uri if call is not None else "")
            report.via = {CallReferred: "referred", CallReplaced: "replaced"}.get(type(event), "")
            if isinstance(event, CallFinished):
                report.call_id, report.reason = call_id, f"refused: {event.reason}"
            elif call is None:  # over before it could be followed: say why, from its events
                ends = [
                    e.reason
                    for _, e in session.events
                    if isinstance(e, CallFinished) and e.call_id == call_id
                ]
                report.reason = ends[-1] if ends else "the call ended before it could be answered"
            else:
                if isinstance(event, CallIncoming):
                    session.phone.answer(call_id)
                await session.follow(call, _duration(args), report)
            statuses.append(exit_status(report))
            _print_report(session, report)
    except asyncio.CancelledError:
        statuses.append(EXIT_FAILURE)
    finally:
        await session.phone.stop()  # hangs up and unregisters
    return worst(statuses) if statuses else EXIT_FAILURE


def _brought_in(event: ControllerEvent) -> str:
    """The call an event brings to `answer`: one ringing, one a transfer placed or answered
    for us; "" for any other event."""
    if isinstance(event, CallIncoming | CallReplaced):
        return event.call_id
    if isinstance(event, CallReferred):
        return event.new_call_id
    return ""


def _duration(args: argparse.Namespace) -> float:
    value = getattr(args, "duration", None)
    return DEFAULT_DURATION if value is None else float(value)


def cmd_call(args: argparse.Namespace) -> int:
    config = load_config(config_path(args), warn=warn)
    check_target(args.uri, config)
    return run_call(args, config)


def cmd_answer(args: argparse.Namespace) -> int:
    return run_answer(args, load_config(config_path(args), warn=warn))


def run_call(args: argparse.Namespace, config: Config, out: TextIO = sys.stdout) -> int:
    """`pidphone call URI`: place one call, report it, exit 0 when secured as required."""
    return asyncio.run(_until_sigterm(_call(args, config, out)))


def run_answer(args: argparse.Namespace, config: Config, out: TextIO = sys.stdout) -> int:
    """`pidphone answer`: answer `--count` incoming calls, reporting each."""
    return asyncio.run(_until_sigterm(_answer(args, config, out)))
