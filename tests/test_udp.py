"""The UDP driver on loopback: datagrams both ways, and a STUN binding on the shared socket."""

from __future__ import annotations

import asyncio

from pidphone.drivers.udp import POLL_WATCHDOG, UdpSocket, local_address_towards, open_udp
from pidphone.ports import Address
from pidphone.rtp import stun


def test_datagrams_both_ways() -> None:
    async def main() -> None:
        got_a: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        got_b: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        a = await open_udp("127.0.0.1", 0, lambda d, s: got_a.put_nowait((d, s)))
        b = await open_udp("127.0.0.1", 0, lambda d, s: got_b.put_nowait((d, s)))
        try:
            a.sendto(b"\x80hello", b.local)
            data, source = await asyncio.wait_for(got_b.get(), 2)
            assert (data, source) == (b"\x80hello", a.local)
            b.sendto(b"\x80back", source)
            assert await asyncio.wait_for(got_a.get(), 2) == (b"\x80back", b.local)
        finally:
            a.close()
            b.close()
        a.sendto(b"after close", b.local)  # ignored, never raises

    asyncio.run(main())


def test_stun_binding_learns_mapped_address_and_keeps_media_flowing() -> None:
    async def main() -> None:
        server: UdpSocket

        def answer(data: bytes, source: Address) -> None:
            request = stun.parse_message(data)
            # Pretend a NAT mapped the client to 203.0.113.7:40404.
            server.sendto(
                stun.build_binding_response(request.transaction_id, "203.0.113.7", 40404),
                source,
            )

        server = await open_udp("127.0.0.1", 0, answer)
        media: list[bytes] = []
        client = await open_udp("127.0.0.1", 0, lambda d, s: media.append(d))
        try:
            mapped = await client.stun_binding(server.local)
            assert mapped == ("203.0.113.7", 40404)
            assert media == []  # the STUN answer never reached the call
        finally:
            client.close()
            server.close()

    asyncio.run(main())


def test_stun_binding_without_answer_gives_none() -> None:
    async def main() -> None:
        silent = await open_udp("127.0.0.1", 0, lambda d, s: None)
        client = await open_udp("127.0.0.1", 0, lambda d, s: None)
        try:
            assert await client.stun_binding(silent.local, (0.05, 0.05)) is None
        finally:
            client.close()
            silent.close()

    asyncio.run(main())


def test_local_address_towards_loopback() -> None:
    assert asyncio.run(local_address_towards("127.0.0.1")) == "127.0.0.1"
    assert asyncio.run(local_address_towards("localhost")) in ("127.0.0.1", "::1")


def test_polled_socket_is_read_on_polls_then_by_the_loop_again_when_they_stop() -> None:
    async def main() -> None:
        got: list[bytes] = []
        a = await open_udp("127.0.0.1", 0, lambda d, s: None)
        b = await open_udp("127.0.0.1", 0, lambda d, s: got.append(d))
        try:
            b.poll()  # nothing waiting; from now on the ticks read the socket
            a.sendto(b"\x80one", b.local)
            a.sendto(b"\x80two", b.local)
            await asyncio.sleep(0.05)
            assert got == []  # the loop no longer reads it
            b.poll()
            assert got == [b"\x80one", b"\x80two"]
            await asyncio.sleep(POLL_WATCHDOG * 2.5)  # the ticks stopped
            a.sendto(b"\x80three", b.local)
            for _ in range(100):
                if len(got) == 3:
                    break
                await asyncio.sleep(0.01)
            assert got[-1] == b"\x80three"
        finally:
            a.close()
            b.close()
        b.poll()  # closed: nothing happens

    asyncio.run(main())
