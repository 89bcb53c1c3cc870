"""The UDP driver on loopback: datagrams both ways, and a STUN binding on the shared socket."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

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


def test_socket_handed_to_the_clock_is_read_and_written_by_polls_then_by_the_loop_again() -> None:
    async def main() -> None:
        got: list[bytes] = []
        polled: list[bytes] = []
        a = await open_udp("127.0.0.1", 0, lambda d, s: got.append(d))
        b = await open_udp("127.0.0.1", 0, lambda d, s: got.append(d))

        def tick() -> bool:
            # The audio clock's thread, as in a call.
            return await_thread(lambda: b.poll(lambda d, s: polled.append(d)))

        def await_thread(work: Callable[[], bool]) -> bool:
            result: list[bool] = []
            thread = threading.Thread(target=lambda: result.append(work()))
            thread.start()
            thread.join()
            return result[0]

        try:
            assert tick() is False  # the loop reads it until it hands it over
            b.hand_to_clock()
            a.sendto(b"\x80one", b.local)
            a.sendto(b"\x80two", b.local)
            await asyncio.sleep(0.05)
            assert got == []  # the loop no longer reads it
            assert tick() is True
            assert polled == [b"\x80one", b"\x80two"]
            b.send_now(b"\x80back", a.local)
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.01)
            assert got == [b"\x80back"]
            await asyncio.sleep(POLL_WATCHDOG * 2.5)  # the ticks stopped
            a.sendto(b"\x80three", b.local)
            for _ in range(100):
                if len(got) == 2:
                    break
                await asyncio.sleep(0.01)
            assert got[-1] == b"\x80three"
            assert tick() is False  # given back to the loop
        finally:
            a.close()
            b.close()
        assert b.poll(lambda d, s: polled.append(d)) is False  # closed: nothing happens
        b.send_now(b"\x80late", a.local)
        assert polled == [b"\x80one", b"\x80two"]

    asyncio.run(main())
