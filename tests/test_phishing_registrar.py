"""A phishing registrar lookalike gets nothing derived from the password; the real registrar
(Kamailio) still gets credentials for REGISTER and for the INVITEs it challenges.

Real processes on loopback, in a private network namespace: Kamailio as the account's
registrar (it challenges REGISTER with 401 and INVITE with 407), and tests/peers/phisher.py, a
TLS SIP server with a valid certificate for its own address that the user dials directly
(sips:bob@127.0.0.2:<port>) and that answers every INVITE with another set of challenges:
every realm (the account's too), algorithm, qop and nonce, as 407, 401 or both. The phone is
the engine with its screen, then `pidphone call` as a process of its own.

Before, the phone answered the lookalike's challenge with a response computed from the
account password (enough to try passwords offline), and, once the registrar had challenged a
call, sent the registrar realm's live credentials along with it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pidphone.app import phone_events as pe
from pidphone.app.call import CallSettings
from pidphone.app.call_events import CallFinished
from pidphone.app.controller import Controller, ControllerEvent, ControllerSettings
from pidphone.app.media import MediaConfig
from pidphone.app.phone_events import RegistrationChanged
from pidphone.app.switchboard import SwitchboardSettings
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.sim_audio import SimAudioDevices
from pidphone.drivers.tls import TlsClientConfig, TlsTransport
from pidphone.drivers.udp import open_udp
from pidphone.ports import KeyEvent, Screen
from pidphone.sip import Request, parse_message
from pidphone.sip.agent import AgentConfig, UserAgent
from pidphone.zrtp.cache import MemoryZidCache
from tests.conftest import need_path, need_program
from tests.peers.kamailio import Kamailio, tls_module
from tests.peers.netns import need_private_network, private_network
from tests.peers.phisher import CHALLENGES

pytestmark = pytest.mark.kamailio

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "alicepw"
WITHHELD = "Password not sent to a stranger (127.0.0.2:{port} is not your registrar)"


@dataclass
class Phisher:
    port: int
    log: Path
    process: subprocess.Popen[str]

    def received(self) -> list[bytes]:
        """Every message it was sent, raw."""
        data = self.log.read_bytes() if self.log.exists() else b""
        out: list[bytes] = []
        while data.startswith(b"==== "):
            header, _, rest = data.partition(b"\n")
            length = int(header[5:])
            out.append(rest[:length])
            data = rest[length + 1 :]
        return out


@pytest.fixture(scope="module")
def network() -> Iterator[None]:
    need_program("kamailio", "kamailio")
    need_path(tls_module(), "kamailio-tls-modules")
    need_private_network()
    with private_network():
        yield


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One CA the phone trusts; its server certificate is valid for the registrar's address
    and for the lookalike's: a certificate for one's own host is no achievement."""
    return make_test_pki(tmp_path_factory.mktemp("pki"), ["127.0.0.1", "127.0.0.2"])


@pytest.fixture(scope="module")
def kamailio(
    network: None, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kamailio]:
    server = Kamailio(tmp_path_factory.mktemp("kamailio"), pki, invite_auth=True)
    with server.started():
        yield server


@pytest.fixture(scope="module")
def phisher(network: None, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phisher]:
    log = tmp_path_factory.mktemp("phisher") / "received.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.peers.phisher", "--cert", str(pki.server_cert),
         "--key", str(pki.server_key), "--host", "127.0.0.2", "--log", str(log)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening "), line
        yield Phisher(int(line.split()[1]), log, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def no_credentials(phisher: Phisher) -> list[bytes]:
    """What the lookalike got; each checked for anything derived from the password."""
    received = phisher.received()
    for data in received:
        message = parse_message(data)
        assert isinstance(message, Request)
        assert message.header("Authorization") is None, data
        assert message.header("Proxy-Authorization") is None, data
        assert b"response=" not in data and b"Digest" not in data, data
        assert PASSWORD.encode() not in data
    return received


def texts(screen: Screen) -> list[str]:
    return [screen.title, *screen.lines]


def test_the_engine_gives_a_lookalike_nothing_and_shows_why(
    kamailio: Kamailio, phisher: Phisher, pki: Pki
) -> None:
    withheld = WITHHELD.format(port=phisher.port)

    async def main() -> None:
        shown: list[Screen] = []
        events: list[ControllerEvent] = []

        class Display:
            def show(self, screen: Screen) -> None:
                shown.append(screen)

            def close(self) -> None:
                pass

        agent = UserAgent(
            AgentConfig(
                aor="sip:alice@127.0.0.1",
                password=PASSWORD,
                registrar=kamailio.address,
                keepalive_interval=0,
            )
        )
        lookalike = f"sips:bob@127.0.0.2:{phisher.port}"
        engine = Controller(
            ControllerSettings(
                calls=SwitchboardSettings(call=CallSettings(media=MediaConfig())),
                phone=pe.PhoneSettings(account="alice", speed_dials={"1": lookalike}),
            ),
            agent,
            TlsTransport(TlsClientConfig(ca_file=str(pki.ca_cert))),
            MemoryZidCache(),
            open_udp,
            audio=SimAudioDevices(),
            display=Display(),
        )
        engine.add_listener(events.append)

        async def until(
            check: Callable[[ControllerEvent], bool], count: int = 1
        ) -> ControllerEvent:
            """The `count`th event that passes `check`, once it has come."""
            async with asyncio.timeout(15):
                while True:
                    found = [e for e in events if check(e)]
                    if len(found) >= count:
                        return found[count - 1]
                    await asyncio.sleep(0.02)

        await engine.start()
        try:
            await until(lambda e: isinstance(e, RegistrationChanged) and e.state == "registered")
            # The registrar challenges a call (407) and gets credentials: the call reaches
            # its lookup (404, nobody of that name) and credentials go up front from now on.
            call = await engine.place_call("sip:nobody@127.0.0.1")
            ended = await until(lambda e: isinstance(e, CallFinished) and e.call_id == call.call_id)
            assert isinstance(ended, CallFinished) and ended.status == 404
            for n in range(len(CHALLENGES)):
                engine.press(KeyEvent("speed1"))  # the user dials the lookalike
                finished = await until(
                    lambda e: isinstance(e, CallFinished) and e.reason == withheld,
                    count=n + 1,
                )
                assert isinstance(finished, CallFinished) and finished.status in (401, 407)
                await asyncio.sleep(0.1)
                # the screen (two lines of 22 characters for the notice) says it in full
                assert texts(shown[-1])[1:3] == ["Call failed: Password", "not sent to a stranger"]
                engine.press(KeyEvent("hangup"))
        finally:
            await engine.stop()

    asyncio.run(main())
    received = no_credentials(phisher)
    invites = [m for m in received if m.startswith(b"INVITE ")]
    assert len(invites) >= len(CHALLENGES)  # one per call: never sent again with credentials
    assert len(kamailio.requests("INVITE")) >= 2  # challenged, then with credentials


def test_pidphone_call_reports_the_refusal_and_sends_nothing(
    kamailio: Kamailio, phisher: Phisher, pki: Pki, tmp_path: Path
) -> None:
    """`pidphone call` as its own process: registered with Kamailio (401, credentials, 200),
    it dials the lookalike and says why the call ended."""
    config = tmp_path / "pidphone.toml"
    config.write_text(
        'hardware = "simulated"\n'
        f'[account]\naor = "sip:alice@127.0.0.1"\npassword = "{PASSWORD}"\n'
        f'[server]\nregistrar = "127.0.0.1:{kamailio.tls_port}"\nca_file = "{pki.ca_cert}"\n'
        f'keepalive_interval = 0\n[security]\nzid_cache = "{tmp_path / "zid.json"}"\n'
    )
    config.chmod(0o600)
    before = len(phisher.received())
    registers = len(kamailio.requests("REGISTER"))
    done = subprocess.run(
        [sys.executable, "-m", "pidphone.cli", "call", "--config", str(config),
         f"sips:bob@127.0.0.2:{phisher.port}"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    received = no_credentials(phisher)
    assert [m.split(b" ", 1)[0] for m in received[before:]] == [b"INVITE", b"ACK"]
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "registration: registered" in lines
    assert f"call ended: {WITHHELD.format(port=phisher.port)}" in lines, done.stdout
    assert f"result: FAILED (failed): {WITHHELD.format(port=phisher.port)}" in lines
    assert len(kamailio.requests("REGISTER")) >= registers + 2  # challenged, then with them
