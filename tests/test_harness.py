"""The shared test rig (tests/harness.py): its wire does exactly what its patterns say, and its
SIP network delivers, changes and drops what it is told to."""

from __future__ import annotations

from pidphone.sip import events as ev
from tests.harness import OFFER, Wire, agent_events, two_phones


def batches(wire: Wire, *sent: list[bytes]) -> list[list[bytes]]:
    return [wire.carry(batch, float(i)) for i, batch in enumerate(sent)]


def test_a_clean_wire_carries_everything_in_order() -> None:
    assert batches(Wire(), [b"1", b"2"], [], [b"3"]) == [[b"1", b"2"], [], [b"3"]]


def test_patterns_cycle_over_the_datagrams_that_cross() -> None:
    assert batches(Wire(loss=[False, True]), [b"1", b"2", b"3"], [b"4", b"5"]) == [
        [b"1", b"3"],
        [b"5"],
    ]
    assert batches(Wire(duplicate=[True, False]), [b"1", b"2", b"3"]) == [
        [b"1", b"1", b"2", b"3", b"3"]
    ]


def test_a_held_datagram_arrives_after_the_next_batch_even_an_empty_one() -> None:
    assert batches(Wire(hold=[True, False, False]), [b"1", b"2"], [], [b"3", b"4"]) == [
        [b"2"],
        [b"1"],
        [b"3"],
    ]


def test_alter_then_keep_then_patterns() -> None:
    wire = Wire(
        alter=lambda batch: [*batch, b"injected"],
        keep=lambda data, now: data != b"drop" and now < 1.0,
        loss=[False, True],
    )
    assert batches(wire, [b"1", b"drop"], [b"2"]) == [[b"1"], []]
    assert wire.crossed == 2


def test_the_sip_network_connects_and_delivers_what_alter_made_of_the_bytes() -> None:
    net, alice, bob = two_phones()
    net.alter = lambda data: data.replace(b"Alice A", b"Alice Z")
    call_id = alice.invite("sips:bob@127.0.0.1:5062", OFFER, 0.0)
    net.run(0.0)
    assert agent_events(bob) == [ev.IncomingCall(call_id, "sips:alice@127.0.0.1", "Alice Z", OFFER)]
    (_, to, _), *_ = net.wire
    assert to == ("127.0.0.1", 5062)


def test_the_sip_network_drops_what_drop_says_and_nothing_else() -> None:
    net, alice, bob = two_phones()
    net.drop = lambda data: data.startswith(b"INVITE")
    alice.invite("sips:bob@127.0.0.1:5062", OFFER, 0.0)
    net.run(0.0)
    assert agent_events(bob) == [] and net.wire == []
