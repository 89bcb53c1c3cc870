"""Our own call follows a redirect (RFC 3261 §8.1.3.4), within the account's policy.

Back to back with a registrar-proxy that challenges INVITEs (as Kamailio's `proxy_challenge`
does) and answers some users with a 3xx, the way a forwarding phone's 302 comes back through
it: the call goes on to the Contacts in q order, each INVITE through the registrar with the
account's credentials; never to a sip: Contact from a sips: call, never twice to one URI,
never more than `MAX_REDIRECTS` times, never carrying a Contact's URI headers; and a call made
directly to another phone's listener is not redirected at all."""

from __future__ import annotations

import pytest

from pidphone.ports import Address
from pidphone.sip import Request, parse_message
from pidphone.sip import events as ev
from pidphone.sip.agent import UserAgent
from pidphone.sip.invite_client import MAX_REDIRECTS
from tests.harness import (
    ALICE_ADDR,
    BOB_ADDR,
    OFFER,
    REGISTRAR,
    SipNetwork,
    agent_events,
    make_agent,
)
from tests.test_sip_credentials import ChallengingProxy

CAROL_ADDR: Address = ("127.0.0.1", 5063)


class RedirectingProxy(ChallengingProxy):
    """The challenging registrar-proxy, which also answers an INVITE to one of `redirects`'
    users with its (status, Contact), and one to a user nobody registered with 404."""

    def __init__(self, redirects: dict[str, tuple[int, str]], **kwargs: object) -> None:
        super().__init__(password="alicepw", **kwargs)
        self.redirects = redirects

    def forward_request(self, peer: Address, req: Request) -> None:
        if req.method == "ACK" and req.to.tag == "reg1":
            return  # the ACK of a final answer of ours
        auth = req.header("Proxy-Authorization")
        if req.method == "INVITE" and req.to.tag is None and auth is not None:
            user = req.uri.user or ""
            answer = None
            if user in self.redirects:
                status, contact = self.redirects[user]
                answer = self.reply(req, status, (("Contact", contact),))
            elif user not in self.users:
                answer = self.reply(req, 404)
            if answer is not None:
                self.requests.append(req)
                self.out.append((bytes(answer), peer))
                return
        super().forward_request(peer, req)


def rig(
    redirects: dict[str, tuple[int, str]], aor: str = "sip:alice@127.0.0.1"
) -> tuple[SipNetwork, RedirectingProxy, UserAgent, UserAgent]:
    net = SipNetwork()
    proxy = RedirectingProxy(redirects)
    alice = make_agent(aor, 1, password="alicepw", registrar=REGISTRAR)
    carol = make_agent("sip:carol@127.0.0.1", 3, password="alicepw", registrar=REGISTRAR)
    net.add(ALICE_ADDR, alice)
    net.add(CAROL_ADDR, carol)
    net.add(REGISTRAR, proxy)
    alice.register(0.0)
    carol.register(0.0)
    net.run(0.0)
    agent_events(alice)
    agent_events(carol)
    return net, proxy, alice, carol


def invites_from_alice(net: SipNetwork) -> list[tuple[Address, Request]]:
    """(where it went, the INVITE) for every INVITE Alice put on the wire."""
    out = []
    for source, target, data in net.wire:
        if source[1] == REGISTRAR[1] or not data.startswith(b"INVITE "):
            continue
        message = parse_message(data)
        assert isinstance(message, Request)
        if message.from_.uri.user == "alice":
            out.append((target, message))
    return out


def tried(net: SipNetwork) -> list[str]:
    """The users Alice's INVITEs asked for, once each (a challenged INVITE is sent again)."""
    users: list[str] = []
    for _, invite in invites_from_alice(net):
        if not users or users[-1] != invite.uri.user:
            users.append(invite.uri.user or "")
    return users


def test_a_302_is_followed_through_the_registrar_to_the_contact() -> None:
    net, _, alice, carol = rig({"bob": (302, "<sip:carol@127.0.0.1>")})
    call_id = alice.invite("bob", OFFER, 1.0)
    net.run(1.0)
    events = agent_events(alice)
    assert ev.CallRedirected(call_id, 302, "sip:carol@127.0.0.1") in events
    (incoming,) = [e for e in agent_events(carol) if isinstance(e, ev.IncomingCall)]
    assert incoming.call_id == call_id  # the same call, gone on
    carol.answer(call_id, OFFER, 1.1)
    net.run(1.1)
    assert any(isinstance(e, ev.CallAnswered) for e in agent_events(alice))

    invites = invites_from_alice(net)
    assert tried(net) == ["bob", "carol"]
    assert {target for target, _ in invites} == {REGISTRAR}  # never straight to a Contact
    first, last = invites[0][1], invites[-1][1]
    assert last.call_id == first.call_id and last.from_.tag == first.from_.tag
    assert last.to.uri == first.to.uri and last.to.tag is None  # still the call to bob
    assert last.cseq.seq > first.cseq.seq
    assert last.header("Proxy-Authorization")  # the registrar's challenge, answered to it


def test_contacts_are_tried_in_q_order_and_a_failed_one_moves_on() -> None:
    contacts = (
        "<sip:nobody@127.0.0.1>;q=0.2, <sip:ghost@127.0.0.1>;q=0.9, <sip:carol@127.0.0.1>;q=0.5"
    )
    net, _, alice, carol = rig({"bob": (300, contacts)})
    call_id = alice.invite("bob", OFFER, 1.0)
    net.run(1.0)
    assert tried(net) == ["bob", "ghost", "carol"]  # ghost (404), then carol; never nobody
    redirected = [e for e in agent_events(alice) if isinstance(e, ev.CallRedirected)]
    assert [e.target for e in redirected] == ["sip:ghost@127.0.0.1", "sip:carol@127.0.0.1"]
    assert any(isinstance(e, ev.IncomingCall) and e.call_id == call_id for e in agent_events(carol))


@pytest.mark.parametrize(
    ("aor", "redirects", "followed", "reason"),
    [
        (  # a sips call never goes on to a sip Contact
            "sips:alice@127.0.0.1",
            {"bob": (302, "<sip:carol@127.0.0.1>")},
            ["bob"],
            "Moved Temporarily to sip:carol@127.0.0.1",
        ),
        (  # nor anywhere but sip/sips
            "sip:alice@127.0.0.1",
            {"bob": (302, "<tel:+41446681800>")},
            ["bob"],
            "Moved Temporarily to tel:+41446681800",
        ),
        (  # a loop back to a target already tried ends it
            "sip:alice@127.0.0.1",
            {"bob": (302, "<sip:dave@127.0.0.1>"), "dave": (302, "<sip:bob@127.0.0.1>")},
            ["bob", "dave"],
            "Moved Temporarily to sip:bob@127.0.0.1",
        ),
        (  # and so does a redirect to ourselves
            "sip:alice@127.0.0.1",
            {"bob": (302, "<sip:alice@127.0.0.1>")},
            ["bob"],
            "Moved Temporarily to sip:alice@127.0.0.1",
        ),
        (  # a few hops, no more
            "sip:alice@127.0.0.1",
            {f"r{n}": (301, f"<sip:r{n + 1}@127.0.0.1>") for n in range(10)},
            [f"r{n}" for n in range(MAX_REDIRECTS + 1)],
            f"Moved Permanently to sip:r{MAX_REDIRECTS + 1}@127.0.0.1",
        ),
        (  # 305 Use Proxy would choose our next hop: never followed
            "sip:alice@127.0.0.1",
            {"bob": (305, "<sip:carol@127.0.0.1>")},
            ["bob"],
            "Use Proxy to sip:carol@127.0.0.1",
        ),
    ],
    ids=["sips-to-sip", "tel", "loop", "ourselves", "hops", "use-proxy"],
)
def test_the_policy_ends_a_redirect_it_does_not_allow(
    aor: str, redirects: dict[str, tuple[int, str]], followed: list[str], reason: str
) -> None:
    net, _, alice, _ = rig(redirects, aor=aor)
    first = next(iter(redirects))
    alice.invite(first, OFFER, 1.0)
    net.run(1.0)
    assert tried(net) == followed
    (ended,) = [e for e in agent_events(alice) if isinstance(e, ev.CallEnded)]
    assert ended.reason == reason and 300 <= (ended.status or 0) < 400


def test_a_contacts_uri_headers_are_not_carried_on() -> None:
    """A 302 cannot make our INVITE replace someone's call (?Replaces=) or carry anything
    else it names in the Contact's URI."""
    contact = "<sip:carol@127.0.0.1?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2&Subject=x>"
    net, _, alice, carol = rig({"bob": (302, contact)})
    call_id = alice.invite("bob", OFFER, 1.0)
    net.run(1.0)
    last = invites_from_alice(net)[-1][1]
    assert last.uri.user == "carol" and last.uri.headers == ()
    assert last.header("Replaces") is None and last.header("Subject") is None
    assert any(isinstance(e, ev.IncomingCall) and e.call_id == call_id for e in agent_events(carol))


def test_a_call_made_directly_to_another_phone_is_not_redirected() -> None:
    """Without a registrar the Contact would be a host the peer chose: the call ends naming
    it, and nothing is sent there."""
    net = SipNetwork()
    alice = make_agent("sip:alice@127.0.0.1", 1)
    bob = make_agent("sip:bob@127.0.0.1", 2)
    net.add(ALICE_ADDR, alice)
    net.add(BOB_ADDR, bob)
    alice.invite("sip:bob@127.0.0.1:5062", OFFER, 1.0)
    net.run(1.0)
    (incoming,) = [e for e in agent_events(bob) if isinstance(e, ev.IncomingCall)]
    bob.redirect(incoming.call_id, "sip:carol@127.0.0.1:5063", 1.1)
    net.run(1.1)
    (ended,) = [e for e in agent_events(alice) if isinstance(e, ev.CallEnded)]
    assert ended.status == 302 and ended.reason == "Moved Temporarily to sip:carol@127.0.0.1:5063"
    assert not any(target == CAROL_ADDR for _, target, _ in net.wire)


def test_a_hang_up_right_after_a_redirect_waits_for_the_new_invites_provisional() -> None:
    """Bob's phone rang, then forwarded the call (no answer after N seconds): the INVITE to
    Carol has had no provisional response yet, so a hang-up now must not CANCEL it (§9.1)."""
    net, _, alice, _ = rig({})
    bob = make_agent("sip:bob@127.0.0.1", 2, password="alicepw", registrar=REGISTRAR)
    net.add(BOB_ADDR, bob)
    bob.register(0.0)
    net.run(0.0)
    call_id = alice.invite("bob", OFFER, 1.0)
    net.run(1.0)
    bob.ringing(call_id, 1.1)
    net.run(1.1)
    relayed = b"Via: SIP/2.0/TLS 127.0.0.1:5070;"  # the proxy's own Via: on its way to Carol
    net.drop = lambda data: data.startswith(b"INVITE sip:carol") and relayed in data
    bob.redirect(call_id, "carol", 1.2)
    net.run(1.2)
    assert tried(net) == ["bob", "carol"]
    alice.hangup(call_id, 1.3)
    net.run(1.3)
    ended = [e for e in agent_events(alice) if isinstance(e, ev.CallEnded)]
    assert ended and ended[-1].reason == "Cancelled"
    assert not any(data.startswith(b"CANCEL ") for _, _, data in net.wire)
