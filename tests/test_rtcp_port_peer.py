"""A peer that declines rtcp-mux and sends its RTCP from its own RTCP port to our RTP port, as
linphonec 5.3 (Debian 13) does, against a real `pidphone answer` over TLS and UDP on loopback.
Like linphonec, it stops sending RTP when it has nothing to say.

The peer is built here from pidphone's own parts (SIP agent over TLS, MediaSession) on two
real sockets: RTP and ZRTP from port P, RTCP from P+1, everything to pidphone's RTP port, and
no a=rtcp-mux in its offer. pidphone must keep sending RTP to P: an authenticated SRTCP packet
from P+1 moves only its RTCP destination. (It used to move the RTP destination too, and the
peer then heard silence whenever it did not itself send RTP.)
"""

from __future__ import annotations

import asyncio
import math
import select
import socket
import threading
import time
from pathlib import Path

from pidphone.app.media import MediaConfig, MediaSession
from pidphone.audio.analysis import dominant_frequencies
from pidphone.drivers.certs import make_test_pki
from pidphone.rtp.classify import PacketKind, classify
from pidphone.sdp import build_offer
from pidphone.sip.events import CallAnswered
from pidphone.zrtp.cache import MemoryZidCache
from tests.peers.interop import PidphoneRun, has_tone
from tests.peers.netns import need_private_network, private_network
from tests.peers.pidphone import Phone
from tests.test_adversary import direct_config, wait_listening

CALL_SECONDS = 8.0
"""Past the first RTCP interval (5 s) by long enough to hear what follows the peer's report."""
TALKING = 2.0
"""Seconds the peer sends RTP; then it is silent (linphonec sends no RTP in silence) and only
its RTCP goes on: nothing but pidphone's own rule keeps its RTP at the peer's RTP port."""
SIP_PORT = 5072
RTP_PORT = 41000


class TwoPortPeer:
    """The peer's media on RTP_PORT (RTP, ZRTP) and RTP_PORT + 1 (RTCP), in a thread."""

    def __init__(self, media: MediaSession) -> None:
        self.media = media
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", RTP_PORT))
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp.bind(("127.0.0.1", RTP_PORT + 1))
        self.got: dict[str, list[bytes]] = {"rtp port": [], "rtcp port": []}
        self.played: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        start = time.monotonic()
        next_frame, frame = start, 0
        tone = [int(8000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(160)]
        pcm = b"".join(v.to_bytes(2, "little", signed=True) for v in tone)
        while not self.stop.is_set():
            readable, _, _ = select.select([self.rtp, self.rtcp], [], [], 0.005)
            now = time.monotonic()
            for sock, name in ((self.rtp, "rtp port"), (self.rtcp, "rtcp port")):
                if sock in readable:
                    data, source = sock.recvfrom(65536)
                    self.got[name].append(data)
                    self.media.receive_datagram(data, source, now)
            timer = self.media.get_timer()
            if timer is not None and timer <= now:
                self.media.handle_timer(now)
            if now >= next_frame:
                next_frame += 0.02
                frame += 1
                if now - start < TALKING:
                    self.media.send_audio(pcm, now)
                self.played.append(self.media.pull_audio(now))
            for data, address in self.media.datagrams_to_send():
                # RTCP leaves from the RTCP port, everything else from the RTP port
                sock = self.rtcp if classify(data) is PacketKind.RTCP else self.rtp
                sock.sendto(data, address)
            while self.media.next_event() is not None:
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.rtp.close()
        self.rtcp.close()


async def call_from_the_peer(workdir: Path, pki_dir: Path) -> tuple[TwoPortPeer, PidphoneRun]:
    pki = make_test_pki(pki_dir, ["127.0.0.1"])
    bob = PidphoneRun.answer(
        direct_config(workdir / "bob" / "bob.toml", pki, 700.0, SIP_PORT), duration=30
    )
    wait_listening(SIP_PORT, bob)
    media = MediaSession(MediaConfig(), cache=MemoryZidCache())
    media.configure("PCMU", 0, 101)
    async with Phone("carol", None, pki=pki, register=False) as carol:
        offer = build_offer(
            address=("127.0.0.1", RTP_PORT),
            zrtp_hash=media.hello_hash.rpartition(" ")[2],
            session_id=4242,
            session_version=1,
            username="carol",
        )
        assert b"rtcp-mux" not in bytes(offer)  # declined, as linphonec 5.3 does
        call_id = carol.sip.invite(f"sips:bob@127.0.0.1:{SIP_PORT}", bytes(offer))
        carol.local_sdp[call_id] = offer
        answered = await carol.expect(CallAnswered, timeout=20)
        params = carol.media(call_id, answered.sdp)
        # rtcp=None: its RTCP goes to pidphone's RTP port (pidphone offered rtcp-mux)
        started = time.monotonic()
        media.set_remote(params.remote_address, params.remote_zrtp_hash, now=started)
        media.start(started)
        peer = TwoPortPeer(media)
        peer.thread.start()
        await asyncio.sleep(CALL_SECONDS)
        carol.sip.hangup(call_id)
        await asyncio.sleep(0.3)
        peer.close()
    return peer, bob


def test_rtp_keeps_going_to_the_rtp_port_of_a_peer_that_sends_rtcp_from_another(
    tmp_path: Path,
) -> None:
    need_private_network()
    with private_network():
        peer, bob = asyncio.run(call_from_the_peer(tmp_path, tmp_path / "pki"))
        report = bob.result(timeout=30)
    assert report["state"] == "secure", bob.describe()
    assert peer.media.secured is not None and peer.media.secured.sas == report["sas"]
    # pidphone authenticated the peer's SRTCP (sent from RTP_PORT + 1) ...
    assert report["rtcp_received"] >= 1, report
    # ... and its RTP still went to RTP_PORT, never to the RTCP port
    rtp_at_rtcp_port = [d for d in peer.got["rtcp port"] if classify(d) is PacketKind.RTP]
    assert rtp_at_rtcp_port == []
    assert sum(classify(d) is PacketKind.RTP for d in peer.got["rtp port"]) > 200
    # so the peer kept hearing pidphone's tone to the end
    tail = b"".join(peer.played[-100:])
    assert has_tone([round(f) for f in dominant_frequencies(tail, count=1)], 700.0)
    assert report["clear_packets_sent"] == 0
