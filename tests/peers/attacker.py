"""An attacker on the media path of a call on loopback, as a process of its own.

    python -m tests.peers.attacker --ready READY_FILE --report REPORT.json [--spoof]

It watches every UDP datagram on `lo` (an AF_PACKET socket: it sees the traffic, as an
attacker on the path or on the same network does, but cannot drop or change it) and, from
addresses of its own (127.0.0.2 and up, any port), sends to the phones' media ports:

- at every phase of the exchange (right after each new ZRTP message type it sees go by), a
  burst of forged ZRTP messages of every type with a valid CRC: with random SSRCs (what an
  off-path attacker can make) and with the sender's real SSRC (what an on-path one can), all
  with hash chains and MACs that cannot check;
- all along, junk (random bytes, the ZRTP cookie around garbage, RTP- and RTCP-looking noise)
  and oversized datagrams (5,000 and 60,000 bytes, with a ZRTP header);
- once SRTP flows, replayed, truncated and bit-flipped copies of the phones' SRTP and SRTCP,
  and every ZRTP message type again with the real SSRC; with `--spoof`, those ZRTP forgeries
  also go out under the other phone's own address and port (a raw socket: IP_HDRINCL).

Before SECURE the on-path forgeries leave out Error, HelloACK, Conf2ACK, ErrorACK and Ping:
nothing authenticates them before keys exist, so RFC 6189 §5.9 lets an on-path attacker end
an exchange with them (a denial of service SECURITY.md names). After SECURE every type goes.

On SIGTERM (or after --duration) it writes a JSON report: what it sent by category, the
phases it struck, the phones it found. Started from the test's network namespace thread.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pidphone.rtp.classify import PacketKind, classify
from pidphone.zrtp.fragment import FRAGMENT_FIRST_BYTE, Fragment, Reassembler, encode_fragment
from pidphone.zrtp.messages import (
    ClearAck,
    Commit,
    Conf2Ack,
    Confirm1,
    Confirm2,
    DHPart1,
    DHPart2,
    Error,
    ErrorAck,
    GoClear,
    Hello,
    HelloAck,
    Message,
    Ping,
    PingAck,
    RelayAck,
    SasRelay,
    ZrtpParseError,
    encode_packet,
    parse_message,
    parse_packet,
)

ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
PHONE_HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
UNAUTHENTICATED_BEFORE_KEYS = (Error, HelloAck, Conf2Ack, ErrorAck, Ping)
"""What an on-path attacker could use to end an exchange before SECURE (left out then)."""


@dataclass
class Phone:
    """A media port seen sending ZRTP from the phones' address."""

    port: int
    ssrc: int | None = None
    sequence: int = 0
    hello: Hello | None = None
    types_seen: set[str] = field(default_factory=set)
    srtp: list[bytes] = field(default_factory=list)
    srtcp: list[bytes] = field(default_factory=list)
    peer: int | None = None
    fragment: Fragment | None = None
    """The last real fragment it sent (a post-quantum Commit or DHPart1)."""
    reassembler: Reassembler = field(default_factory=Reassembler)


class Attacker:
    def __init__(self, spoof: bool, seed: int) -> None:
        self.rng = random.Random(seed)
        self.sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sniffer.bind(("lo", 0))
        # it sees its own datagrams too (60 kB ones among them): room enough to miss nothing
        self.sniffer.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        self.senders = []
        for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((host, 0))
            self.senders.append(sock)
        self.raw = (
            socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) if spoof else None
        )
        self.phones: dict[int, Phone] = {}
        self.ours: set[bytes] = set()
        """Payloads we sent under a phone's address, not to be taken for the phone's."""
        self.sent: dict[str, int] = {}
        self.phases: list[str] = []
        self.secure_since: float | None = None
        self.next_junk = 0.0
        self.next_replay = 0.0

    # ------------------------------------------------------------------ sending

    def send(self, category: str, data: bytes, port: int) -> None:
        sock = self.rng.choice(self.senders)
        try:
            sock.sendto(data, (PHONE_HOST, port))
        except OSError:
            return
        self.sent[category] = self.sent.get(category, 0) + 1

    def spoof(self, category: str, data: bytes, source_port: int, port: int) -> None:
        if self.raw is None:
            return
        udp = struct.pack("!HHHH", source_port, port, 8 + len(data), 0) + data
        header = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            0,
            0,
            64,
            socket.IPPROTO_UDP,
            0,
            socket.inet_aton(PHONE_HOST),
            socket.inet_aton(PHONE_HOST),
        )
        self.ours.add(data)
        self.raw.sendto(header + udp, (PHONE_HOST, 0))
        self.sent[category] = self.sent.get(category, 0) + 1

    def forged(self, *, ssrc: int | None, sender: Phone | None, all_types: bool) -> list[bytes]:
        """Every ZRTP message type, valid CRC, nothing that authenticates."""
        rnd = self.rng.randbytes
        zid = sender.hello.zid if sender and sender.hello else rnd(12)
        hello = Hello("1.10", b"attacker".ljust(16), rnd(32), zid, key_agreements=("DH3k",))
        if sender is not None and sender.hello is not None:  # the real one, downgraded
            hello = Hello(
                sender.hello.version,
                sender.hello.client_id,
                sender.hello.h3,
                zid,
                key_agreements=("DH3k",),
                mac=rnd(8),
            )
        part = {
            "h1": rnd(32),
            "rs1_id": rnd(8),
            "rs2_id": rnd(8),
            "auxsecret_id": rnd(8),
            "pbxsecret_id": rnd(8),
            "pv": rnd(32),
        }
        encrypted = {"mac": rnd(8), "iv": rnd(16), "encrypted": rnd(40)}
        messages: list[Message] = [
            hello,
            Commit(rnd(32), zid, "S256", "AES1", "HS80", "X255", "B32 ", hvi=b"\xff" * 32),
            DHPart1(**part),
            DHPart2(**part),
            Confirm1(**encrypted),
            Confirm2(**encrypted),
            GoClear(rnd(8)),
            SasRelay(**encrypted),
            ClearAck(),
            RelayAck(),
            PingAck("1.10", rnd(8), rnd(8), self.rng.getrandbits(32)),
        ]
        if all_types:
            messages += [
                Error(0x20),
                Error(0x100),
                HelloAck(),
                Conf2Ack(),
                ErrorAck(),
                Ping("1.10", rnd(8)),
            ]
        out = []
        for message in messages:
            if ssrc is None or sender is None:
                sequence, packet_ssrc = self.rng.getrandbits(16), self.rng.getrandbits(32)
            else:
                sender.sequence = (sender.sequence + 1) & 0xFFFF
                sequence, packet_ssrc = sender.sequence, ssrc
            out.append(encode_packet(sequence, packet_ssrc, bytes(message)))
        return out

    def burst(self, sender: Phone, receiver: int, phase: str) -> None:
        """Forgeries at one phase of the exchange, to the phone that just got a message."""
        self.phases.append(phase)
        secure = self.secure_since is not None
        self.junk(receiver, oversize=False)
        for data in self.forged(ssrc=None, sender=None, all_types=True):
            self.send("zrtp_off_path", data, receiver)
        if sender.ssrc is not None:
            for data in self.forged(ssrc=sender.ssrc, sender=sender, all_types=secure):
                self.send("zrtp_on_path", data, receiver)
                if secure:
                    self.spoof("zrtp_spoofed", data, sender.port, receiver)
        if sender.fragment is not None:
            for data in self.forged_fragments(sender.fragment, secure=secure):
                self.send("fragment_on_path", data, receiver)
                self.spoof("fragment_spoofed", data, sender.port, receiver)

    def forged_fragments(self, real: Fragment, *, secure: bool) -> list[bytes]:
        """Fragments of the phone's message as an on-path attacker who read it can make them,
        once the message is whole: other bytes in its place, a longer message under its id,
        words past the end, a stranger's SSRC. Once the call is secure, also the phone's next
        message id: before, a fragment planted there could be completed by the real ones into
        a garbled message, which ends the exchange (as a forged whole message could, were it
        not refused by the hash chain; left out then, like UNAUTHENTICATED_BEFORE_KEYS)."""
        rnd = self.rng.randbytes
        fakes = [
            (real.ssrc, real.message_id, real.total_words, real.offset_words, len(real.payload)),
            (real.ssrc, real.message_id, real.total_words + 900, 0, 64),
            (real.ssrc, real.message_id, real.total_words, real.total_words - 1, 64),
            (self.rng.getrandbits(32), real.message_id, real.total_words, 0, len(real.payload)),
        ]
        if secure:
            next_id = (real.message_id + 1) & 0xFFFF
            fakes.append((real.ssrc, next_id, real.total_words, 0, len(real.payload)))
        return [
            encode_fragment(
                sequence=(real.sequence + 1) & 0xFFFF,
                ssrc=ssrc,
                message_id=message_id,
                total_words=total,
                offset_words=offset,
                payload=rnd(size),
            )
            for ssrc, message_id, total, offset, size in fakes
        ]

    def junk(self, port: int, *, oversize: bool = True) -> None:
        rnd = self.rng.randbytes
        header = b"\x10\x00" + rnd(2) + b"ZRTP" + rnd(4)
        body = rnd(40)
        self.send("junk", rnd(self.rng.randrange(1, 300)), port)
        self.send("junk", encode_packet(1, 2, b"PZ\x00\x0bnonsense" + body), port)
        self.send("junk", header + rnd(60), port)  # bad CRC
        self.send("junk", b"\x80\x00" + rnd(180), port)  # RTP-looking
        self.send("junk", b"\x81\xc8" + rnd(60), port)  # RTCP-looking
        if oversize:
            self.send("oversize", header + rnd(5000), port)
            self.send("oversize", header + rnd(60000), port)

    def replays(self, phone: Phone) -> None:
        if phone.peer is None:
            return
        for packet in phone.srtp[-3:]:
            self.send("srtp_replay", packet, phone.peer)
            self.send("srtp_truncated", packet[: -self.rng.randrange(1, 11)], phone.peer)
            flipped = bytearray(packet)
            flipped[self.rng.randrange(12, len(flipped))] ^= 1 << self.rng.randrange(8)
            self.send("srtp_flipped", bytes(flipped), phone.peer)
        for packet in phone.srtcp[-2:]:
            self.send("srtcp_replay", packet, phone.peer)
            self.send("srtcp_truncated", packet[:-6], phone.peer)  # a 4-byte-tag copy
            flipped = bytearray(packet)
            flipped[-1] ^= 1
            self.send("srtcp_flipped", bytes(flipped), phone.peer)

    # ------------------------------------------------------------------ watching

    def seen(self, src: str, sport: int, dport: int, payload: bytes, now: float) -> None:
        if src != PHONE_HOST or payload in self.ours:
            return
        kind = classify(payload)
        if kind is PacketKind.ZRTP and payload[0] == FRAGMENT_FIRST_BYTE:
            phone = self.phones.setdefault(sport, Phone(sport))
            phone.peer = dport
            try:
                phone.fragment = Fragment.parse(payload)
                whole = phone.reassembler.receive(payload, now)
                name = "" if whole is None else parse_message(whole.message).type_name
            except ZrtpParseError:
                return
            phone.ssrc = phone.fragment.ssrc
            phone.sequence = max(phone.sequence, phone.fragment.sequence)
            if name and name not in phone.types_seen:
                phone.types_seen.add(name)
                self.burst(phone, dport, f"{sport}>{dport} {name}")
        elif kind is PacketKind.ZRTP:
            try:
                packet = parse_packet(payload)
            except ZrtpParseError:
                return
            phone = self.phones.setdefault(sport, Phone(sport))
            phone.peer = dport
            phone.ssrc, phone.sequence = packet.ssrc, max(phone.sequence, packet.sequence)
            name = packet.message.type_name
            if isinstance(packet.message, Hello):
                phone.hello = packet.message
            if name not in phone.types_seen:
                phone.types_seen.add(name)
                self.burst(phone, dport, f"{sport}>{dport} {name}")
        elif kind in (PacketKind.RTP, PacketKind.RTCP) and sport in self.phones:
            phone = self.phones[sport]
            store = phone.srtp if kind is PacketKind.RTP else phone.srtcp
            store.append(payload)
            del store[:-8]
            flowing = len(self.phones) >= 2 and all(p.srtp for p in self.phones.values())
            if self.secure_since is None and flowing:
                self.secure_since = now

    def sniff(self, timeout: float) -> None:
        readable, _, _ = select.select([self.sniffer], [], [], timeout)
        if not readable:
            return
        now = time.monotonic()
        for _ in range(256):
            try:
                frame, address = self.sniffer.recvfrom(70000, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if address[2] == PACKET_OUTGOING or len(frame) < 42:
                continue
            ip = frame[14:]
            if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
                continue
            ihl = (ip[0] & 0x0F) * 4
            sport, dport, length = struct.unpack_from("!HHH", ip, ihl)
            payload = ip[ihl + 8 : ihl + length]
            self.seen(socket.inet_ntoa(ip[12:16]), sport, dport, payload, now)

    def run(self, duration: float, stop: list[bool]) -> None:
        end = time.monotonic() + duration
        while not stop and time.monotonic() < end:
            self.sniff(0.01)
            now = time.monotonic()
            if self.phones and now >= self.next_junk:
                self.next_junk = now + 0.1
                for port in list(self.phones):
                    self.junk(port)
            if self.secure_since is not None and now >= self.next_replay:
                self.next_replay = now + 0.2
                for phone in list(self.phones.values()):
                    self.replays(phone)
                    if phone.peer is not None:
                        self.burst(phone, phone.peer, f"{phone.port}>{phone.peer} secure")

    def report(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "phases": self.phases,
            "phones": sorted(self.phones),
            "secure_seen": self.secure_since is not None,
        }


class AttackerRun:
    """The attacker as a subprocess (under `timeout`), stopped by its PID; `stop()` returns
    its report. Start it from the thread that is in the test's network namespace."""

    def __init__(self, workdir: Path, *, spoof: bool = True, seed: int = 10) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.report_path = workdir / "attacker.json"
        ready = workdir / "attacker.ready"
        ready.unlink(missing_ok=True)
        self.report_path.unlink(missing_ok=True)
        args = ["--ready", str(ready), "--report", str(self.report_path), "--seed", str(seed)]
        if spoof:
            args.append("--spoof")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.log = workdir / "attacker.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["timeout", "120", sys.executable, "-m", "tests.peers.attacker", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the attacker did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> dict[str, Any]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # timeout passes it on
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if not self.report_path.exists():
            raise RuntimeError(f"the attacker wrote no report:\n{self.log.read_text()}")
        report: dict[str, Any] = json.loads(self.report_path.read_text())
        return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--spoof", action="store_true")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    attacker = Attacker(args.spoof, args.seed)
    args.ready.write_text("ready\n")
    try:
        attacker.run(args.duration, stop)
    finally:
        args.report.write_text(json.dumps(attacker.report()))


if __name__ == "__main__":
    main()
