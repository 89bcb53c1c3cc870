"""The UDP driver on loopback: datagrams both ways, batches that never block, errors counted.
(STUN on a call's socket is the media worker's: tests/test_media_worker.py.)"""

from __future__ import annotations

import asyncio
import selectors
import socket
import time

import pytest

from pidphone.drivers.udp import local_address_towards, open_udp


def wait_readable(fileno: int, timeout: float = 2.0) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(fileno, selectors.EVENT_READ)
        assert selector.select(timeout), "nothing arrived"


def test_datagrams_both_ways() -> None:
    a = open_udp("127.0.0.1", 0)
    b = open_udp("127.0.0.1", 0)
    try:
        assert b.receive(8) == []  # nothing waiting: returns at once
        a.sendto(b"\x80hello", b.local)
        wait_readable(b.fileno())
        assert [(d, s) for d, s, _ in b.receive(8)] == [(b"\x80hello", a.local)]
        b.sendto(b"\x80back", a.local)
        wait_readable(a.fileno())
        assert [(d, s) for d, s, _ in a.receive(8)] == [(b"\x80back", b.local)]
    finally:
        a.close()
        b.close()
    a.sendto(b"after close", b.local)  # ignored, never raises
    assert a.receive(8) == []


def test_receive_takes_at_most_its_limit_and_keeps_the_rest() -> None:
    a = open_udp("127.0.0.1", 0)
    b = open_udp("127.0.0.1", 0)
    try:
        for n in range(5):
            a.sendto(bytes([0x80, n]), b.local)
        wait_readable(b.fileno())
        got: list[bytes] = []
        for _ in range(50):
            batch = b.receive(2)
            assert len(batch) <= 2
            got += [data for data, _, _ in batch]
            if len(got) == 5:
                break
            wait_readable(b.fileno())
        assert got == [bytes([0x80, n]) for n in range(5)]
    finally:
        a.close()
        b.close()


def test_each_datagram_comes_with_when_it_arrived_not_when_it_was_read() -> None:
    """The kernel's arrival time, on the monotonic clock: a reader held up (a busy media
    thread) still learns when each datagram came, so the jitter buffer does not take the
    reader's lateness for network jitter."""
    a = open_udp("127.0.0.1", 0)
    b = open_udp("127.0.0.1", 0)
    try:
        sent = time.monotonic()
        a.sendto(b"\x80first", b.local)
        time.sleep(0.2)
        a.sendto(b"\x80second", b.local)
        wait_readable(b.fileno())
        time.sleep(0.1)
        read = time.monotonic()
        got = b.receive(8)
        assert [data for data, _, _ in got] == [b"\x80first", b"\x80second"]
        first, second = (arrived for _, _, arrived in got)
        assert sent <= first < sent + 0.05
        assert 0.15 < second - first < 0.3
        assert second < read - 0.05
    finally:
        a.close()
        b.close()


def test_a_stamp_from_before_a_wall_clock_step_is_not_believed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kernel stamps on the wall clock: stepped forward between arrival and read (NTP at
    boot on a Pi without a clock), the stamp would put the datagram far in the past and
    wreck the jitter buffer's transit floor; it is taken as arriving when it was read."""
    a = open_udp("127.0.0.1", 0)
    b = open_udp("127.0.0.1", 0)
    try:
        a.sendto(b"\x80first", b.local)
        wait_readable(b.fileno())
        stepped = time.time_ns() + 3600 * 1_000_000_000
        monkeypatch.setattr(time, "time_ns", lambda: stepped)
        read = time.monotonic()
        ((data, _, arrived),) = b.receive(8)
        assert data == b"\x80first"
        assert read <= arrived < read + 0.5
    finally:
        a.close()
        b.close()


def test_an_icmp_error_is_counted_and_reading_goes_on() -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    gone = closed.getsockname()
    closed.close()
    a = open_udp("127.0.0.1", 0)
    b = open_udp("127.0.0.1", 0)
    try:
        a.sendto(b"\x80lost", gone)  # port unreachable comes back as an error on a
        b.sendto(b"\x80data", a.local)
        wait_readable(a.fileno())
        got = []
        for _ in range(10):
            got += a.receive(8)
            if got:
                break
            wait_readable(a.fileno())
        assert [(d, s) for d, s, _ in got] == [(b"\x80data", b.local)]
    finally:
        a.close()
        b.close()


def test_a_port_in_use_raises() -> None:
    a = open_udp("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            open_udp("127.0.0.1", a.local[1])
    finally:
        a.close()


def test_local_address_towards_loopback() -> None:
    assert asyncio.run(local_address_towards("127.0.0.1")) == "127.0.0.1"
    assert asyncio.run(local_address_towards("localhost")) in ("127.0.0.1", "::1")
