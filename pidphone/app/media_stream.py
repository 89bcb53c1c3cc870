"""The audio side of a call's media: the negotiated codec over RTP (G.711, G.722 or Opus), the
jitter buffer and loss concealment (the codec's own: Appendix I for G.711 and G.722, libopus's
PLC and in-band FEC for Opus), RFC 4733 DTMF at the codec's clock, and the RTCP reports
(RFC 3550).

It knows nothing of keys or addresses: the media session hands it RTP that has passed (or did
not need) the SRTP check and takes from it the clear packets to protect and send.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from pidphone.audio.analysis import rms
from pidphone.audio.codec import Codec, CodecDecodeError, audio_rate, make_codec
from pidphone.errors import LocalProtocolError
from pidphone.rtp import RtpSender, rtp_fields
from pidphone.rtp.jitter import JitterBuffer
from pidphone.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    ntp_middle32,
    ntp_timestamp,
    parse_rtcp,
    serialize_rtcp,
)
from pidphone.rtp.stats import ReceiverStats
from pidphone.rtp.telephone_event import TelephoneEventDecoder, TelephoneEventEncoder

from .media_config import MediaConfig
from .media_events import MediaDtmf, MediaEvent, MediaStats

SDES_CNAME = 1
QUIET_RMS = 100.0
"""A decoded frame this quiet (about -50 dBFS) is where the jitter buffer may drop a frame to
shrink its delay (`JitterBuffer.pop_early`): nobody hears a pause shortened by 20 ms."""


GAP_SLACK = 1e-6
"""Frames: how far below a whole number of frames a gap between capture times still counts as
that number (the times are floats)."""


class AudioStream:
    """One call's RTP audio in clear: what to send for each captured frame, what to play for
    each period, and the RTCP reports about both.

    It shares the session's counters and event queue (received DTMF goes there).
    """

    def __init__(
        self,
        config: MediaConfig,
        *,
        stats: MediaStats,
        events: deque[MediaEvent],
        wall_clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.stats = stats
        self._events = events
        self._wall_clock = wall_clock
        self._sender = RtpSender(0)
        self.ssrc = self._sender.ssrc
        self._receiver: ReceiverStats | None = None
        self._peer_ssrc: int | None = None
        self.codec: Codec = make_codec("PCMU")
        self._jitter = JitterBuffer(max_delay=config.max_jitter_delay)
        self._playout_before = (0, 0, 0, 0, 0)
        """Late, lost, concealed, dropped and resyncs of the jitter buffers replaced so far."""
        self._payload_type = 0
        self._event_pt: int | None = None
        self._dtmf_out = TelephoneEventEncoder()
        self._dtmf_in = TelephoneEventDecoder()
        self.sending = True
        """Our SDP direction lets audio out (sendrecv or sendonly)."""
        self._captured: float | None = None
        """When the last frame given to `packet_for` was captured."""
        self._resumed = False
        """Frames were skipped: the next audio packet gets the marker bit."""
        self._last_sr: tuple[int, float] | None = None
        """The middle 32 bits of the peer's last SR timestamp and when it arrived (LSR/DLSR)."""

    def fill_playout_stats(self) -> None:
        """Copy the jitter buffer's counters (with those of the buffers before a codec change)
        into the stats: read when the stats are reported, not counted per frame."""
        jitter, stats, before = self._jitter, self.stats, self._playout_before
        stats.playout_late = before[0] + jitter.late
        stats.playout_lost = before[1] + jitter.lost
        stats.playout_concealed = before[2] + jitter.concealed
        stats.playout_dropped = before[3] + jitter.dropped
        stats.playout_resyncs = before[4] + jitter.resyncs
        stats.playout_delay = jitter.delay

    @property
    def audio_rate(self) -> int:
        """Hz of the PCM `packet_for` takes and `pull_audio` gives: the codec's."""
        return self.codec.sample_rate

    def configure(
        self,
        codec: str,
        payload_type: int,
        telephone_event_pt: int | None,
        fmtp: Mapping[str, str] | None = None,
    ) -> None:
        """The codec and payload types the SDP negotiation settled on, and the peer's fmtp for
        it (Opus: FEC, DTX, the widest audio it plays). A change of codec (a re-INVITE) starts
        a new encoder, decoder and jitter buffer; the RTP timestamps go on at the new clock.
        telephone-event runs at the codec's clock (the SDP agreed it at that rate)."""
        new = make_codec(codec, fmtp or {}, sample_rate=audio_rate(codec))
        old, self.codec = self.codec, new
        old.close()
        if (old.name, old.clock_rate) != (new.name, new.clock_rate):
            self.fill_playout_stats()
            stats = self.stats
            self._playout_before = (
                stats.playout_late,
                stats.playout_lost,
                stats.playout_concealed,
                stats.playout_dropped,
                stats.playout_resyncs,
            )
            self._jitter = JitterBuffer(
                clock_rate=new.clock_rate,
                samples_per_frame=new.frame_ticks,
                max_delay=self.config.max_jitter_delay,
            )
        self._sender.samples_per_packet = new.frame_ticks
        self._dtmf_out = TelephoneEventEncoder(samples_per_packet=new.frame_ticks)
        self._payload_type = payload_type
        self._sender.payload_type = payload_type
        self._event_pt = telephone_event_pt

    # ------------------------------------------------------------------ out

    def packet_for(self, pcm: bytes, allowed: bool, captured: float | None = None) -> bytes | None:
        """The RTP packet for one captured 20 ms frame: its audio, or the RFC 4733 event
        that replaces it (§2.5). None when nothing goes out (`allowed` is False: the policy
        or the direction withholds audio); the frame's time passes either way.

        `captured` is when the frame was complete on the capture clock. Frames the card never
        gave (an overrun, a stalled reader whose clock restarted) are skipped in the timestamp,
        which stands for the sampling instant (RFC 3550 §5.1), and the next audio packet is
        marked as a talk-spurt's first: the receiver plays a gap there. Without the skip every
        later packet would come that much later for its timestamp, a step of the path's delay
        the peer's jitter buffer must first tell from jitter."""
        if captured is not None:
            last, self._captured = self._captured, captured
            if last is not None:
                codec = self.codec
                # Whole frames only: a completion time read late (a coarse card pointer, a late
                # wake-up) makes one gap up to a frame longer and the next one shorter, and
                # must not count as a frame lost (the skip could never be taken back).
                gap = (captured - last) * codec.clock_rate / codec.frame_ticks
                missed = int(gap + GAP_SLACK) - 1
                if missed > 0:
                    self._sender.skip(codec.frame_ticks * missed)
                    self._resumed = True
                    self.stats.capture_skipped += missed
        if self._event_pt is not None and self._dtmf_out.busy:
            event = self._dtmf_out.frame()
            packet = None
            if event is not None and allowed:
                packet = self._sender.event_packet(
                    self._event_pt, event.payload, timestamp=event.timestamp, marker=event.marker
                )
            self._sender.skip(self.codec.frame_ticks)
            return packet
        if not allowed:
            self.stats.frames_withheld += 1
            self._sender.skip(self.codec.frame_ticks)
            return None
        payload = self.codec.encode(pcm)
        if not payload:  # Opus DTX: nothing worth sending
            self._sender.skip(self.codec.frame_ticks)
            return None
        if self._resumed:
            self._resumed = False
            return self._sender.packet(payload, marker=True)
        return self._sender.packet(payload)

    def send_dtmf(self, key: str, duration: float) -> None:
        """Send a key press as RFC 4733 events in place of the next frames' audio."""
        if self._event_pt is None:
            raise LocalProtocolError("the peer did not negotiate telephone-event")
        clock = self.codec.clock_rate
        self._dtmf_out.start(key, self._sender.timestamp, duration=round(duration * clock))

    def rtcp_report(self, now: float, *, bye: bool = False) -> bytes:
        """An SR (or RR when we have sent nothing), SDES CNAME, and BYE at the end (§6.1)."""
        blocks: tuple[ReportBlock, ...] = ()
        if self._receiver is not None and self._peer_ssrc is not None:
            lsr, since = (0, 0.0)
            if self._last_sr is not None:
                # never negative: the SR's time is the kernel's arrival stamp, which can be
                # a little after the `now` of the wake-up that reads it and times this report
                lsr, since = self._last_sr[0], max(0.0, now - self._last_sr[1])
            blocks = (self._receiver.report_block(self._peer_ssrc, lsr, since),)
        report: SenderReport | ReceiverReport
        if self._sender.packets_sent:
            report = SenderReport(
                ssrc=self.ssrc,
                ntp_timestamp=ntp_timestamp(self._wall_clock()),
                rtp_timestamp=self._sender.timestamp,
                packet_count=self._sender.packets_sent,
                octet_count=self._sender.octets_sent,
                reports=blocks,
            )
        else:
            report = ReceiverReport(ssrc=self.ssrc, reports=blocks)
        cname = SdesItem(SDES_CNAME, self.config.cname.encode())
        packets: list[RtcpPacket] = [report, SourceDescription((SdesChunk(self.ssrc, (cname,)),))]
        if bye:
            packets.append(Bye((self.ssrc,)))
        return serialize_rtcp(packets)

    # ------------------------------------------------------------------ in

    def receive_rtp(self, data: bytes, now: float) -> bool:
        """Clear RTP (checked by SRTP, or allowed clear): into the jitter buffer, or a DTMF
        event. False for a payload type not negotiated. A malformed packet (bad padding
        included) raises RtpParseError."""
        # The header's fields, without building a packet object: this runs 50 times a second.
        payload_type, marker, sequence, timestamp, ssrc, payload = rtp_fields(data)
        receiver = self._receiver
        if receiver is None or ssrc != self._peer_ssrc:
            self._peer_ssrc = ssrc
            receiver = self._receiver = ReceiverStats()
        clock = self.codec.clock_rate
        receiver.update(sequence, timestamp, now, clock)
        stats = self.stats
        stats.packets_received += 1
        stats.packets_lost = max(0, receiver.cumulative_lost)
        stats.jitter = receiver.jitter / clock
        if payload_type == self._payload_type:
            self._jitter.put_raw(
                sequence,
                timestamp,
                ssrc,
                payload_type,
                payload,
                arrival=now,
                marker=marker,
            )
        elif payload_type == self._event_pt:
            press = self._dtmf_in.receive(payload, timestamp)
            if press is not None:
                self._events.append(MediaDtmf(press.key))
        else:
            return False
        return True

    def receive_rtcp(self, data: bytes, now: float) -> None:
        """Clear RTCP: the peer's last SR time, for our reports' LSR/DLSR."""
        for packet in parse_rtcp(data):
            if isinstance(packet, SenderReport) and packet.ssrc == self._peer_ssrc:
                self._last_sr = (ntp_middle32(packet.ntp_timestamp), now)
        self.stats.rtcp_received += 1

    def pull_audio(self, now: float) -> bytes:
        """The next 20 ms to play at `audio_rate`: decoded, rebuilt from the next packet's FEC
        or concealed over a loss, or silence. After a quiet frame, when the buffer holds more
        delay than the jitter needs, the next frame plays in its place (a pause 20 ms shorter
        is the least audible way to shrink the delay)."""
        codec = self.codec
        frame = self._jitter.pop(now)
        if frame.kind == "silence":
            return codec.silence()
        if frame.kind == "lost":
            return self._conceal(frame.next_payload)
        pcm = self._decode(frame.payload)
        if self._jitter.excess and rms(pcm) < QUIET_RMS:
            following = self._jitter.pop_early(now)
            if following is not None:
                pcm = self._decode(following.payload)
        return pcm

    def _decode(self, payload: bytes) -> bytes:
        codec = self.codec
        try:
            pcm = codec.decode(payload)
        except CodecDecodeError:
            self.stats.undecodable += 1
            return codec.conceal()
        size = codec.frame_bytes
        if len(pcm) != size:  # a peer's packet of another duration: play 20 ms of it
            pcm = pcm[:size].ljust(size, b"\0")
        return pcm

    def _conceal(self, next_payload: bytes) -> bytes:
        codec = self.codec
        if not next_payload and codec.has_fec and not self._jitter.fec_hold:
            # The path loses packets: from now on hold a frame more than the jitter needs,
            # so that the next packet (and the FEC copy of the lost frame in it) is here
            # when a frame is lost. (The media worker reads the sockets before it plays: a
            # packet read on the tick a frame is due counts as here.)
            self._jitter.fec_hold = self._jitter.frame_time
        if next_payload:
            try:
                rebuilt = codec.decode_fec(next_payload)
            except CodecDecodeError:
                rebuilt = None
            if rebuilt is not None and len(rebuilt) == codec.frame_bytes:
                self.stats.fec_recovered += 1
                return rebuilt
        return codec.conceal()
