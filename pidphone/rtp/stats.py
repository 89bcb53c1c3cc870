"""Reception statistics for one RTP source (RFC 3550 Appendix A.1, A.3, A.8).

Sequence validation follows A.1 (probation of two in-order packets, a large jump accepted
only when the next packet confirms it); loss and fraction lost follow A.3; interarrival
jitter follows A.8. The result feeds an RTCP report block.
"""

from __future__ import annotations

from pidphone.rtp.rtcp import ReportBlock

_SEQ_MOD = 1 << 16
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100
_MIN_SEQUENTIAL = 2


class ReceiverStats:
    """Counts what arrived from one source: expected, received, lost, jitter."""

    def __init__(self) -> None:
        self._started = False
        self._probation = _MIN_SEQUENTIAL
        self._max_seq = 0
        self._cycles = 0
        self._base_seq = 0
        self._bad_seq = _SEQ_MOD + 1
        self.received = 0
        """Packets counted (after probation), duplicates included as RFC 3550 does."""
        self._received_prior = 0
        self._expected_prior = 0
        self._transit: float | None = None
        self.jitter = 0.0
        """Interarrival jitter in RTP timestamp units (A.8)."""

    def _init_seq(self, sequence: int) -> None:
        self._base_seq = sequence
        self._max_seq = sequence
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def update(self, sequence: int, timestamp: int, arrival: float, clock_rate: int = 8000) -> bool:
        """Account one packet (arrival in seconds); return False if it was not counted
        (still on probation, or a jump not yet confirmed)."""
        if not self._started:
            self._started = True
            self._init_seq(sequence)
            self._max_seq = (sequence - 1) % _SEQ_MOD
            self._probation = _MIN_SEQUENTIAL
        if not self._update_seq(sequence):
            return False
        transit = arrival * clock_rate - timestamp
        if self._transit is not None:
            delta = abs(transit - self._transit)
            if delta < 1 << 31:  # a timestamp wrap is not jitter
                self.jitter += (delta - self.jitter) / 16
        self._transit = transit
        return True

    def _update_seq(self, sequence: int) -> bool:
        udelta = (sequence - self._max_seq) % _SEQ_MOD
        if self._probation:
            if sequence == (self._max_seq + 1) % _SEQ_MOD:
                self._probation -= 1
                self._max_seq = sequence
                if self._probation == 0:
                    self._init_seq(sequence)
                    self.received += 1
                    return True
            else:
                self._probation = _MIN_SEQUENTIAL - 1
                self._max_seq = sequence
            return False
        if udelta < _MAX_DROPOUT:
            if sequence < self._max_seq:
                self._cycles += _SEQ_MOD
            self._max_seq = sequence
        elif udelta <= _SEQ_MOD - _MAX_MISORDER:
            if sequence != self._bad_seq:
                self._bad_seq = (sequence + 1) % _SEQ_MOD
                return False
            # two sequential packets after a jump: the source restarted
            self._init_seq(sequence)
            self._transit = None
        # else: a duplicate or reordered packet, counted
        self.received += 1
        return True

    @property
    def extended_highest_sequence(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        if self._probation:
            return 0
        return self.extended_highest_sequence - self._base_seq + 1

    @property
    def cumulative_lost(self) -> int:
        """Expected minus received, clamped to the signed 24-bit field."""
        return max(-(1 << 23), min((1 << 23) - 1, self.expected - self.received))

    def report_block(
        self, ssrc: int, last_sr_ntp_middle32: int = 0, delay_since_last_sr: float = 0.0
    ) -> ReportBlock:
        """The report block about source `ssrc`; starts a new fraction-lost interval.

        `delay_since_last_sr` is in seconds (0 when no SR has been received)."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction,
            packets_lost=self.cumulative_lost,
            highest_sequence=self.extended_highest_sequence & 0xFFFFFFFF,
            jitter=min(int(self.jitter), 0xFFFFFFFF),
            lsr=last_sr_ntp_middle32,
            dlsr=min(round(delay_since_last_sr * 65536), 0xFFFFFFFF) if last_sr_ntp_middle32 else 0,
        )
