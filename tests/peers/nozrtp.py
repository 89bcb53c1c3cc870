"""A peer without ZRTP, made of linphonec: media_encryption=none, behind a Kamailio that
removes a=zrtp-hash from the SDP and a relay that drops ZRTP packets.

liblinphone runs ZRTP opportunistically whenever it can: even with encryption none it answers
an offer that carries a=zrtp-hash with its own and completes ZRTP, and its idle ZRTP engine
starts as soon as a ZRTP Hello reaches it. With neither, it behaves as a phone that has no
ZRTP: it sends clear RTP and ignores ZRTP packets, which is what the "require" policy tests
need (tests/test_interop_linphone_nozrtp.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from pidphone.rtp.classify import PacketKind, classify
from tests.peers.kamailio import Kamailio


class NoZrtpKamailio(Kamailio):
    """The rig's Kamailio, rewriting the SDP it relays so that a linphonec with
    media_encryption=none behaves as a phone without ZRTP.

    liblinphone runs ZRTP opportunistically: even with encryption none it answers an offer
    that carries a=zrtp-hash with its own and completes ZRTP, and its idle ZRTP engine starts
    as soon as a ZRTP Hello reaches it. So this proxy (sdpops, textops) removes a=zrtp-hash
    from every SDP and moves linphonec's media port `port` to `relay_port`, where a
    `ZrtpDropRelay` forwards all the media but ZRTP packets."""

    def __init__(
        self, *args: Any, port: int = 17078, relay_port: int = 27078, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.port = port
        self.relay_port = relay_port

    def _write_config(self) -> list[str]:
        args = super()._write_config()
        path = self.workdir / "kamailio.cfg"
        text = path.read_text()
        rewrite = (
            '    if (has_body("application/sdp")) {\n'
            '        sdp_remove_line_by_prefix("a=zrtp-hash");\n'
            f'        subst_body("/m=audio {self.port} /m=audio {self.relay_port} /");\n'
            "    }\n"
        )
        edits = (
            ('loadmodule "tls.so"\n', 'loadmodule "tls.so"\nloadmodule "sdpops.so"\n'),
            ("route[RELAY] {\n", "route[RELAY] {\n" + rewrite),
            ("onreply_route[NATREPLY] {\n", "onreply_route[NATREPLY] {\n" + rewrite),
        )
        for anchor, replacement in edits:
            if anchor not in text:
                raise RuntimeError(f"tests/peers/kamailio.cfg has no {anchor.strip()!r} any more")
            text = text.replace(anchor, replacement, 1)
        path.write_text(text)
        return args


class ZrtpDropRelay:
    """UDP relay on 127.0.0.1:`port` (and `port`+1 for RTCP) in front of a phone's media
    port `target`: datagrams from the phone go back to whoever last sent to the relay, the
    others go to the phone, except ZRTP packets (RFC 6189 §5: first byte 0x10, magic cookie
    "ZRTP"), which are counted and dropped — what a phone without ZRTP does with them.
    Create it on the thread that is in the network namespace."""

    def __init__(self, port: int = 27078, target: int = 17078) -> None:
        self.dropped = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        for offset in (0, 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", port + offset))
            sock.settimeout(0.1)
            thread = threading.Thread(
                target=self._run, args=(sock, ("127.0.0.1", target + offset)), daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket, phone: tuple[str, int]) -> None:
        other: tuple[str, int] | None = None
        with sock:
            while not self._stop.is_set():
                try:
                    data, source = sock.recvfrom(4096)
                except OSError:  # the timeout, or an ICMP error from an earlier send
                    continue
                if source == phone:
                    target = other
                else:
                    other, target = source, phone
                    if classify(data) is PacketKind.ZRTP:
                        self.dropped += 1
                        continue
                if target is not None:
                    with contextlib.suppress(OSError):
                        sock.sendto(data, target)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
