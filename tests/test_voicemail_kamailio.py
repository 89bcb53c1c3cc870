"""The voicemail indicator against a real notifier: Kamailio with presence + presence_mwi
(Debian's kamailio-presence-modules). The test plays the voicemail system: it PUBLISHes
message-summary for a box over UDP, and Kamailio NOTIFYs the phone that subscribed over TLS.
The subscription is challenged (407), refreshed, and comes back after Kamailio restarts."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pidphone.config import (
    AccountConfig,
    Config,
    DisplayConfig,
    PhoneConfig,
    SecurityConfig,
    ServerConfig,
)
from pidphone.daemon import Phone as DaemonPhone
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.sip import Response, parse_message
from pidphone.sip.events import (
    Registered,
    RequestRejected,
    VoicemailStatus,
    VoicemailUnavailable,
)
from tests.conftest import need_path, need_program
from tests.peers.kamailio import DEFAULT_USERS, Kamailio, tls_module
from tests.peers.netns import need_private_network, private_network
from tests.peers.pidphone import Phone

pytestmark = pytest.mark.kamailio

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def network() -> Iterator[None]:
    need_program("kamailio", "kamailio")
    need_path(tls_module(), "kamailio-tls-modules")
    need_path(tls_module().replace("tls.so", "presence_mwi.so"), "kamailio-presence-modules")
    need_private_network()
    with private_network():
        yield


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def kamailio(
    network: None, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kamailio]:
    users = {**DEFAULT_USERS, "erin": "erinpw"}
    server = Kamailio(tmp_path_factory.mktemp("kamailio-mwi"), pki, presence=True, users=users)
    with server.started():
        yield server


def publish(kamailio: Kamailio, box: str, body: bytes) -> Response:
    """What a voicemail system does when a message arrives: PUBLISH the box's summary."""
    n = next(_ids)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        head = (
            f"PUBLISH sip:{box}@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKvm{n};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:voicemail@127.0.0.1>;tag=vm{n}\r\n"
            f"To: <sip:{box}@127.0.0.1>\r\n"
            f"Call-ID: vm-{n}@127.0.0.1\r\n"
            f"CSeq: {n} PUBLISH\r\n"
            "Event: message-summary\r\n"
            "Expires: 3600\r\n"
            "Content-Type: application/simple-message-summary\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendto(head.encode() + body, ("127.0.0.1", kamailio.udp_port))
        while True:
            answer = parse_message(sock.recv(65535))
            assert isinstance(answer, Response)
            if answer.status >= 200:
                return answer


def summary(new: int, old: int) -> bytes:
    waiting = "yes" if new else "no"
    return f"Messages-Waiting: {waiting}\r\nVoice-Message: {new}/{old} (0/0)\r\n".encode()


async def next_state(phone: Phone, before: VoicemailStatus | None) -> VoicemailStatus:
    """The next voicemail state that is not `before` told again. A NOTIFY may repeat the
    state it last told (each refresh of the subscription brings one, RFC 6665 §4.2.1.1, and
    on a loaded machine it can come after the PUBLISH a test waits for): a repeat is skipped,
    anything else is the state to check."""
    while (status := await phone.expect(VoicemailStatus)) == before:
        pass
    return status


def run(kamailio: Kamailio, pki: Pki, user: str, body: Any, **kwargs: Any) -> None:
    async def main() -> None:
        async with Phone(user, f"{user}pw", pki=pki, registrar=kamailio.address, **kwargs) as p:
            await body(p)

    asyncio.run(main())


def test_the_count_follows_what_the_voicemail_system_publishes(
    kamailio: Kamailio, pki: Pki
) -> None:
    async def body(alice: Phone) -> None:
        await alice.expect(Registered)
        assert publish(kamailio, "alice", summary(2, 5)).status == 200
        alice.sip.watch_voicemail()
        first = await next_state(alice, None)
        assert first == VoicemailStatus(True, 2, 5)
        assert publish(kamailio, "alice", summary(3, 5)).status == 200
        second = await next_state(alice, first)
        assert second == VoicemailStatus(True, 3, 5)
        assert publish(kamailio, "alice", summary(0, 8)).status == 200
        assert await next_state(alice, second) == VoicemailStatus(False, 0, 8)

    run(kamailio, pki, "alice", body)
    subscribes = [r for r in kamailio.requests("SUBSCRIBE") if "sip:alice@" in r]
    # challenged (407), then with credentials; both over the phone's TLS flow
    assert len(subscribes) == 2, subscribes
    assert all("proto=tls" in line for line in subscribes)


def test_the_subscription_is_refreshed_and_outlives_a_restart_of_the_server(
    kamailio: Kamailio, pki: Pki
) -> None:
    async def body(bob: Phone) -> None:
        await bob.expect(Registered)
        assert publish(kamailio, "bob", summary(0, 0)).status == 200
        bob.sip.agent._voicemail._sub.expires = 4
        bob.sip.watch_voicemail()
        empty = await bob.expect(VoicemailStatus)
        await asyncio.sleep(3)  # refreshed after 2 s (half of 4)
        assert publish(kamailio, "bob", summary(1, 0)).status == 200
        assert (await next_state(bob, empty)).new == 1
        kamailio.restart()  # the TLS flow drops; the published state is gone with it
        await bob.expect(Registered, timeout=20)
        assert publish(kamailio, "bob", summary(4, 1)).status == 200
        seen = [await bob.expect(VoicemailStatus, timeout=20)]
        try:
            async with asyncio.timeout(40):  # refreshes repeat the old state until the new one
                while seen[-1].new != 4:
                    seen.append(await bob.expect(VoicemailStatus, timeout=20))
        except TimeoutError:
            raise AssertionError(f"never told 4 new messages; told {seen}") from None
        assert seen[-1] == VoicemailStatus(True, 4, 1), seen

    run(kamailio, pki, "bob", body)
    refreshes = [line for line in kamailio.requests("SUBSCRIBE") if "sip:127.0.0.1:" in line]
    assert refreshes, kamailio.requests("SUBSCRIBE")


def test_a_body_the_phone_cannot_read_leaves_the_count_and_the_subscription(
    kamailio: Kamailio, pki: Pki
) -> None:
    async def body(carol: Phone) -> None:
        await carol.expect(Registered)
        assert publish(kamailio, "carol", summary(1, 0)).status == 200
        carol.sip.watch_voicemail()
        one = await next_state(carol, None)
        assert one.new == 1
        # Kamailio checks only the first line; the counts are nonsense
        bad = b"Messages-Waiting: yes\r\nVoice-Message: 99999999999/0\r\n"
        assert publish(kamailio, "carol", bad).status == 200
        rejected = await carol.expect(RequestRejected)
        assert rejected.status == 400
        assert publish(kamailio, "carol", summary(2, 0)).status == 200
        assert (await next_state(carol, one)).new == 2

    run(kamailio, pki, "carol", body)


def test_someone_elses_box_is_not_served(kamailio: Kamailio, pki: Pki) -> None:
    async def body(dave: Phone) -> None:
        await dave.expect(Registered)
        dave.sip.watch_voicemail("sip:alice@127.0.0.1")
        refused = await dave.expect(VoicemailUnavailable)
        assert refused.status == 403 and refused.retry_at is None

    run(kamailio, pki, "dave", body)


def test_the_daemon_phone_shows_the_count_on_its_idle_screen(
    kamailio: Kamailio, pki: Pki, tmp_path: Path
) -> None:
    config = Config(
        hardware="simulated",
        account=AccountConfig(aor="sip:erin@127.0.0.1", password="erinpw"),
        server=ServerConfig(registrar=f"127.0.0.1:{kamailio.tls_port}", ca_file=str(pki.ca_cert)),
        security=SecurityConfig(zid_cache=str(tmp_path / "zid.json")),
        phone=PhoneConfig(voicemail_indicator=True, voicemail_number="*97"),
        display=DisplayConfig(driver="ssd1306"),
    )
    assert publish(kamailio, "erin", summary(2, 1)).status == 200

    async def shown(phone: DaemonPhone, line: str) -> None:
        async with asyncio.timeout(15):
            while True:
                controller = phone.controller
                screen = controller.screen() if controller is not None else None
                if screen is not None and line in screen.lines:
                    assert "voicemail" in screen.icons
                    return
                await asyncio.sleep(0.05)

    async def main() -> None:
        phone = DaemonPhone(config, lambda status: None)
        await phone.start()
        try:
            await shown(phone, "Voicemail: 2 new")
            assert publish(kamailio, "erin", summary(5, 1)).status == 200
            await shown(phone, "Voicemail: 5 new")
        finally:
            await phone.stop()

    asyncio.run(main())
