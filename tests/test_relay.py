"""The impairment relay of the speech-quality benchmark: its losses, bursts, delays, reordering
and duplicates have the statistics asked for, the same seed gives the same run, and the UDP
relay really carries packets between two sockets on loopback."""

from __future__ import annotations

import itertools
import socket
import statistics
import struct
import threading
import time

import pytest

from bench.relay import Impairer, Impairment, UdpRelay

PACKETS = 40000
SPACING = 0.02


def run(impairment: Impairment, seed: int = 7, count: int = PACKETS) -> list[list[float]]:
    impairer = Impairer(impairment, seed)
    return [impairer.schedule(n * SPACING) for n in range(count)]


def bursts(decisions: list[list[float]]) -> list[int]:
    return [len(list(run)) for lost, run in itertools.groupby(d == [] for d in decisions) if lost]


def test_nothing_set_passes_everything_at_once_in_order() -> None:
    decisions = run(Impairment(), count=1000)
    assert decisions == [[n * SPACING] for n in range(1000)]


@pytest.mark.parametrize("loss", [0.03, 0.1, 0.3])
def test_random_loss_has_its_rate_and_short_bursts(loss: float) -> None:
    decisions = run(Impairment(loss=loss))
    observed = sum(d == [] for d in decisions) / PACKETS
    assert observed == pytest.approx(loss, abs=0.01)
    # independent losses: bursts are geometric with mean 1 / (1 - loss)
    assert statistics.mean(bursts(decisions)) == pytest.approx(1 / (1 - loss), rel=0.1)


@pytest.mark.parametrize(("loss", "burst"), [(0.03, 2.0), (0.1, 4.0), (0.2, 8.0)])
def test_gilbert_elliott_loss_has_its_rate_and_burst_length(loss: float, burst: float) -> None:
    decisions = run(Impairment(loss=loss, burst=burst), count=100000)
    assert sum(d == [] for d in decisions) / len(decisions) == pytest.approx(loss, rel=0.1)
    assert statistics.mean(bursts(decisions)) == pytest.approx(burst, rel=0.12)


def test_jitter_spreads_the_delay_and_reorders() -> None:
    decisions = run(Impairment(delay=0.05, jitter=0.03))
    delays = [d[0] - n * SPACING for n, d in enumerate(decisions)]
    assert min(delays) >= 0.02 - 1e-9 and max(delays) <= 0.08 + 1e-9
    assert statistics.mean(delays) == pytest.approx(0.05, abs=0.001)
    # uniform over 60 ms: the standard deviation is 60 / sqrt(12) ms
    assert statistics.pstdev(delays) == pytest.approx(0.06 / 12**0.5, rel=0.05)
    departures = [d[0] for d in decisions]
    overtaken = sum(b < a for a, b in itertools.pairwise(departures))
    assert overtaken > PACKETS * 0.1


def test_without_reordering_the_order_is_kept() -> None:
    decisions = run(Impairment(delay=0.05, jitter=0.03, reorder=False))
    departures = [d[0] for d in decisions]
    assert departures == sorted(departures)
    assert max(d - n * SPACING for n, d in enumerate(departures)) <= 0.08 + 1e-9


def test_duplicates_follow_one_millisecond_later() -> None:
    decisions = run(Impairment(duplicate=0.05))
    twice = [d for d in decisions if len(d) == 2]
    assert len(twice) / PACKETS == pytest.approx(0.05, abs=0.005)
    assert all(b - a == pytest.approx(0.001) for a, b in twice)


def test_the_seed_makes_a_run_reproducible() -> None:
    impairment = Impairment(loss=0.1, burst=3, jitter=0.03, duplicate=0.01)
    assert run(impairment, seed=5, count=5000) == run(impairment, seed=5, count=5000)
    assert run(impairment, seed=5, count=5000) != run(impairment, seed=6, count=5000)


@pytest.mark.parametrize(
    "bad",
    [{"loss": 1.0}, {"loss": -0.1}, {"burst": 0.5}, {"jitter": -1.0}, {"duplicate": 2.0}],
)
def test_impossible_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Impairment(**bad)  # type: ignore[arg-type]


def _endpoint() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    return sock


def _receive_all(sock: socket.socket, quiet: float = 0.3) -> list[tuple[int, tuple[str, int]]]:
    sock.settimeout(quiet)
    got = []
    try:
        while True:
            data, source = sock.recvfrom(2048)
            got.append((struct.unpack("!I", data[:4])[0], source[:2]))
    except TimeoutError:
        return got


def test_relay_carries_both_ways_and_each_phone_sees_one_peer() -> None:
    phone_a, phone_b = _endpoint(), _endpoint()
    with UdpRelay(("127.0.0.1", 0), ("127.0.0.1", 0)) as relay:
        # both phones speak first (as ZRTP's Hello does), so each side latches its phone
        phone_a.sendto(struct.pack("!I", 0), relay.a)
        phone_b.sendto(struct.pack("!I", 0), relay.b)
        time.sleep(0.05)
        for n in range(1, 201):
            phone_a.sendto(struct.pack("!I", n) + bytes(160), relay.a)
            phone_b.sendto(struct.pack("!I", n) + bytes(160), relay.b)
        at_b, at_a = _receive_all(phone_b), _receive_all(phone_a)
    assert [n for n, _ in at_b if n] == list(range(1, 201))
    assert [n for n, _ in at_a if n] == list(range(1, 201))
    assert {source for _, source in at_b} == {relay.b}
    assert {source for _, source in at_a} == {relay.a}
    assert relay.peers == {"a": phone_a.getsockname(), "b": phone_b.getsockname()}
    phone_a.close()
    phone_b.close()


def test_relay_impairs_what_it_carries() -> None:
    phone_a, phone_b = _endpoint(), _endpoint()
    impairment = Impairment(loss=0.2, jitter=0.004, delay=0.004, duplicate=0.05)
    with UdpRelay(("127.0.0.1", 0), ("127.0.0.1", 0), impairment, seed=3) as relay:
        phone_b.sendto(struct.pack("!I", 0), relay.b)
        time.sleep(0.05)
        received: list[tuple[int, tuple[str, int]]] = []
        reader = threading.Thread(target=lambda: received.extend(_receive_all(phone_b, 0.5)))
        reader.start()
        for n in range(1, 1001):
            phone_a.sendto(struct.pack("!I", n), relay.a)
            time.sleep(0.0005)
        reader.join()
        got = [n for n, _ in received]
    stats = relay.stats["a"]
    assert stats.received == 1000
    assert stats.lost == pytest.approx(200, abs=50)
    assert len(got) == stats.sent == 1000 - stats.lost + stats.duplicated
    assert len(set(got)) == 1000 - stats.lost
    assert stats.reordered > 0 and got != sorted(got)
    phone_a.close()
    phone_b.close()


def test_a_stranger_is_not_relayed() -> None:
    phone_a, phone_b, stranger = _endpoint(), _endpoint(), _endpoint()
    with UdpRelay(("127.0.0.1", 0), ("127.0.0.1", 0)) as relay:
        phone_a.sendto(struct.pack("!I", 1), relay.a)
        phone_b.sendto(struct.pack("!I", 2), relay.b)
        time.sleep(0.05)
        stranger.sendto(struct.pack("!I", 99), relay.a)
        assert 99 not in [n for n, _ in _receive_all(phone_b)]
    assert relay.peers["a"] == phone_a.getsockname()
    for sock in (phone_a, phone_b, stranger):
        sock.close()
