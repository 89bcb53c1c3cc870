"""SIGHUP's reload against a real Kamailio (issue 7): a new account unregisters the old one
(REGISTER with Expires 0) and registers the new one; the same account comes back registered.

The REGISTERs are read on the wire (what the TLS transport sends) and in Kamailio's location
table (kamcmd over its control socket). Everything runs in a private network namespace."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pidphone.config import AccountConfig, Config, DisplayConfig, SecurityConfig, ServerConfig
from pidphone.daemon import Phone
from pidphone.drivers.certs import Pki, make_test_pki
from pidphone.drivers.tls import TlsTransport
from pidphone.ports import Address
from tests.conftest import need_path, need_program
from tests.peers.interop import registered as in_location_table
from tests.peers.kamailio import Kamailio, tls_module
from tests.peers.netns import need_private_network, private_network

pytestmark = pytest.mark.kamailio


@pytest.fixture(scope="module")
def network() -> Iterator[None]:
    need_program("kamailio", "kamailio")
    need_program("kamcmd", "kamailio")
    need_path(tls_module(), "kamailio-tls-modules")
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
    with Kamailio(tmp_path_factory.mktemp("kamailio"), pki).started() as server:
        yield server


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SIP message the phone's TLS transport sends, decoded."""
    sent: list[str] = []
    send = TlsTransport.send

    def recording(self: TlsTransport, data: bytes, peer: Address) -> None:
        sent.append(data.decode("utf-8", "replace"))
        send(self, data, peer)

    monkeypatch.setattr(TlsTransport, "send", recording)
    return sent


def account_config(user: str, kamailio: Kamailio, pki: Pki, tmp_path: Path) -> Config:
    host, port = kamailio.address
    return Config(
        hardware="simulated",
        account=AccountConfig(aor=f"sip:{user}@{host}", password=f"{user}pw"),
        server=ServerConfig(
            registrar=f"{host}:{port}", ca_file=str(pki.ca_cert), keepalive_interval=0
        ),
        security=SecurityConfig(zid_cache=str(tmp_path / "zid.json")),
        display=DisplayConfig(driver="none"),
    )


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"never {what}")


def registers(wire: list[str], user: str) -> list[str]:
    return [m for m in wire if m.startswith("REGISTER ") and f"<sip:{user}@" in m]


def expires_zero(message: str) -> bool:
    return bool(
        re.search(r"^Expires:\s*0\s*$", message, re.MULTILINE | re.IGNORECASE)
        or re.search(r"^(Contact|m):.*;\s*expires=0\b", message, re.MULTILINE | re.IGNORECASE)
    )


def test_reload_with_another_account_unregisters_then_registers_it(
    kamailio: Kamailio, pki: Pki, tmp_path: Path, wire: list[str]
) -> None:
    statuses: list[str] = []
    bob_registered = "registered: sip:bob@127.0.0.1"

    async def main() -> None:
        phone = Phone(account_config("alice", kamailio, pki, tmp_path), statuses.append)
        await phone.start()
        try:
            await until(
                lambda: phone.describe() == "registered: sip:alice@127.0.0.1", "registered as alice"
            )
            assert in_location_table(kamailio, "alice")
            sent_before = len(wire)
            await phone.reconfigure(account_config("bob", kamailio, pki, tmp_path))
            await until(lambda: phone.describe() == bob_registered, "registered as bob")
            assert statuses[-1] == bob_registered
            reload = wire[sent_before:]
            to_alice = registers(reload, "alice")
            to_bob = registers(reload, "bob")
            assert to_alice and all(expires_zero(m) for m in to_alice)
            assert to_bob and not any(expires_zero(m) for m in to_bob)
            # alice's unregistration went out before bob's first REGISTER
            assert reload.index(to_alice[0]) < reload.index(to_bob[0])
            # Kamailio challenged bob, bob answered with credentials, and holds his contact
            assert any(m.startswith("Authorization:") for m in to_bob[-1].splitlines())
            assert 'username="bob"' in to_bob[-1]
            assert in_location_table(kamailio, "bob")
            assert not in_location_table(kamailio, "alice")
        finally:
            await phone.stop()

    asyncio.run(main())
    assert any("proto=tls" in line for line in kamailio.requests("REGISTER"))


def test_reload_with_the_same_account_comes_back_registered(
    kamailio: Kamailio, pki: Pki, tmp_path: Path
) -> None:
    statuses: list[str] = []
    registered = "registered: sip:carol@127.0.0.1"

    async def main() -> None:
        config = account_config("carol", kamailio, pki, tmp_path)
        phone = Phone(config, statuses.append)
        await phone.start()
        try:
            await until(lambda: phone.describe() == registered, "registered as carol")
            await phone.reconfigure(config)
            await until(lambda: phone.describe() == registered, "registered as carol again")
            assert statuses[-1] == registered
            assert in_location_table(kamailio, "carol")
        finally:
            await phone.stop()

    asyncio.run(main())
    assert statuses[-1] == "stopping"


def test_answer_stopped_by_sigterm_leaves_no_registration(
    kamailio: Kamailio, pki: Pki, tmp_path: Path
) -> None:
    """systemd, a script or `kill` stops the command while it waits: it hangs up and
    unregisters on the way out; the registrar holds no stale contact. (`call` shares the
    handler.)"""
    import signal
    import subprocess
    import sys
    import time

    host, port = kamailio.address
    user, command = "dave", ["answer", "--count", "1"]
    config = tmp_path / "pidphone.toml"
    config.write_text(
        f'hardware = "simulated"\n'
        f'[account]\naor = "sip:{user}@{host}"\npassword = "{user}pw"\n'
        f'[server]\nregistrar = "{host}:{port}"\nca_file = "{pki.ca_cert}"\n'
        f"keepalive_interval = 0\n"
        f'[security]\nzid_cache = "{tmp_path / "zid.json"}"\n'
        f'[display]\ndriver = "none"\n'
    )
    config.chmod(0o600)
    process = subprocess.Popen(
        [sys.executable, "-m", "pidphone.cli", *command, "--duration", "60", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while not in_location_table(kamailio, user):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(process.communicate(timeout=15)[0].decode())
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=15)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not in_location_table(kamailio, user), output
    assert "Traceback" not in output
