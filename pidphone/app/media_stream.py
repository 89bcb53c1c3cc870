"""The audio side of a call's media: G.711 over RTP, the jitter buffer and loss concealment,
RFC 4733 DTMF, and the RTCP reports (RFC 3550).

It knows nothing of keys or addresses: the media session hands it RTP that has passed (or did
not need) the SRTP check and takes from it the clear packets to protect and send.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pidphone.audio import g711
from pidphone.audio.plc import Concealer
from pidphone.errors import LocalProtocolError
from pidphone.ports import FRAME_BYTES, FRAME_SAMPLES
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

SILENCE = bytes(FRAME_BYTES)
SDES_CNAME = 1


@dataclass(frozen=True)
class G711:
    """G.711 mu-law (PCMU) or A-law (PCMA), 8 kHz: 20 ms PCM frames in, payloads out, and
    back. The session uses nothing else of its codec."""

    name: str
    encode: Callable[[bytes], bytes]
    decode: Callable[[bytes], bytes]
    rate: int = 8000
    """Samples per second of the PCM it takes and gives (also its RTP clock rate)."""


CODECS: dict[str, G711] = {
    "PCMU": G711("PCMU", g711.ulaw_encode, g711.ulaw_decode),
    "PCMA": G711("PCMA", g711.alaw_encode, g711.alaw_decode),
}
"""The codecs a call can negotiate, by their SDP encoding name."""


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
        self._jitter = JitterBuffer(max_delay=config.max_jitter_delay)
        self._plc = Concealer()
        self.codec: G711 = CODECS["PCMU"]
        self._payload_type = 0
        self._event_pt: int | None = None
        self._dtmf_out = TelephoneEventEncoder()
        self._dtmf_in = TelephoneEventDecoder()
        self.sending = True
        """Our SDP direction lets audio out (sendrecv or sendonly)."""
        self._last_sr: tuple[int, float] | None = None
        """The middle 32 bits of the peer's last SR timestamp and when it arrived (LSR/DLSR)."""

    def configure(self, codec: str, payload_type: int, telephone_event_pt: int | None) -> None:
        """The codec and payload types the SDP negotiation settled on."""
        found = CODECS.get(codec)
        if found is None:
            raise LocalProtocolError(f"unsupported codec {codec!r}: {' or '.join(CODECS)}")
        self.codec = found
        self._payload_type = payload_type
        self._sender.payload_type = payload_type
        self._event_pt = telephone_event_pt

    # ------------------------------------------------------------------ out

    def packet_for(self, pcm: bytes, allowed: bool) -> bytes | None:
        """The RTP packet for one captured 20 ms frame: its audio, or the RFC 4733 event
        that replaces it (§2.5). None when nothing goes out (`allowed` is False: the policy
        or the direction withholds audio); the frame's time passes either way."""
        if self._event_pt is not None and self._dtmf_out.busy:
            event = self._dtmf_out.frame()
            packet = None
            if event is not None and allowed:
                packet = self._sender.event_packet(
                    self._event_pt, event.payload, timestamp=event.timestamp, marker=event.marker
                )
            self._sender.skip(FRAME_SAMPLES)
            return packet
        if not allowed:
            self.stats.frames_withheld += 1
            self._sender.skip(FRAME_SAMPLES)
            return None
        return self._sender.packet(self.codec.encode(pcm))

    def send_dtmf(self, key: str, duration: float) -> None:
        """Send a key press as RFC 4733 events in place of the next frames' audio."""
        if self._event_pt is None:
            raise LocalProtocolError("the peer did not negotiate telephone-event")
        self._dtmf_out.start(key, self._sender.timestamp, duration=round(duration * 8000))

    def rtcp_report(self, now: float, *, bye: bool = False) -> bytes:
        """An SR (or RR when we have sent nothing), SDES CNAME, and BYE at the end (§6.1)."""
        blocks: tuple[ReportBlock, ...] = ()
        if self._receiver is not None and self._peer_ssrc is not None:
            lsr, since = (0, 0.0)
            if self._last_sr is not None:
                lsr, since = self._last_sr[0], now - self._last_sr[1]
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
        receiver.update(sequence, timestamp, now)
        stats = self.stats
        stats.packets_received += 1
        stats.packets_lost = max(0, receiver.cumulative_lost)
        stats.jitter = receiver.jitter / 8000
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
        """The next 20 ms to play: decoded, concealed over a loss, or silence."""
        frame = self._jitter.pop(now)
        if frame.kind == "silence":
            # Through the concealer, so that a loss right before a new talk-spurt conceals
            # from this silence rather than replaying the end of the last one.
            return self._plc.good(SILENCE)
        if frame.kind == "lost":
            return self._plc.conceal()
        pcm = self.codec.decode(frame.payload)
        if len(pcm) != FRAME_BYTES:
            pcm = (pcm + SILENCE)[:FRAME_BYTES]
        # G.711 Appendix I plays received audio 3.75 ms late, to cross-fade out of a loss.
        return self._plc.good(pcm)
