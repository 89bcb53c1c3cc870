"""The daemon's phone on simulated hardware, built from a config like `pidphone run` builds
it: a scripted keypad lifts the handset and dials a speed dial over TLS to a `pidphone answer`
on loopback; the call is secured, the status line follows, the screens are drawn as PNG."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
from pathlib import Path

import pytest

from pidphone.app.call_events import CallFinished, CallSecure
from pidphone.app.call_state import CallState
from pidphone.cli.call import _answer
from pidphone.config import (
    AudioConfig,
    Config,
    DisplayConfig,
    LoggingConfig,
    PhoneConfig,
    SecurityConfig,
    ServerConfig,
    SimConfig,
)
from pidphone.daemon import Phone, Service
from pidphone.drivers.call_log import FileCallLog
from pidphone.drivers.certs import make_test_pki


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_scripted_phone_calls_and_reports_status(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"], client_name="127.0.0.1")
    port = free_port()
    callee = Config(
        hardware="simulated",
        server=ServerConfig(
            listen=f"127.0.0.1:{port}",
            client_cert=str(pki.server_cert),
            client_key=str(pki.server_key),
            listen_ca_file=str(pki.ca_cert),
            keepalive_interval=0,
        ),
        security=SecurityConfig(zid_cache=str(tmp_path / "bob.json")),
        sim=SimConfig(tone_frequency=700),
    )
    script = tmp_path / "keys.txt"
    script.write_text("0.3 lift\n0.2 speed1\n3.0 sas_confirm\n1.0 put_down\n")
    screens = tmp_path / "screens"
    caller = Config(
        hardware="simulated",
        server=ServerConfig(
            ca_file=str(pki.ca_cert),
            client_cert=str(pki.client_cert),
            client_key=str(pki.client_key),
            keepalive_interval=0,
        ),
        security=SecurityConfig(zid_cache=str(tmp_path / "alice.json")),
        phone=PhoneConfig(speed_dials={"1": f"sips:bob@127.0.0.1:{port}"}),
        display=DisplayConfig(driver="ssd1306"),
        sim=SimConfig(tone_frequency=1000, keys_script=str(script), screens_dir=str(screens)),
    )
    statuses: list[str] = []

    async def main() -> str:
        out = io.StringIO()
        answering = asyncio.create_task(
            _answer(argparse.Namespace(count=1, duration=30.0, json=True), callee, out)
        )
        await asyncio.sleep(0.3)
        phone = Phone(caller, statuses.append)
        await phone.start()
        try:
            await asyncio.wait_for(answering, 15)
        finally:
            await phone.stop()
        return out.getvalue()

    report = json.loads(asyncio.run(main()))
    assert report["state"] == "secure" and report["ok"]
    assert abs(report["received_frequencies"][0] - 1000) <= 25
    assert statuses[0] == "no account, direct calls only"
    assert f"no account, direct calls only; calling sips:bob@127.0.0.1:{port}" in statuses
    assert "no account, direct calls only; in call, secure" in statuses
    assert statuses[-1] == "stopping"
    assert len(list(screens.glob("*.png"))) >= 4
    # the call is in the history file beside the ZID cache: dialled, secure, SAS confirmed
    (record,) = FileCallLog(tmp_path / "call-history.json").load()
    assert (record.kind, record.number) == ("dialled", f"sips:bob@127.0.0.1:{port}")
    assert record.secure and record.verified and record.duration > 2


def test_reload_when_idle_restarts_the_phone_with_the_new_config(tmp_path: Path) -> None:
    def config(name: str) -> Config:
        return Config(
            hardware="simulated",
            security=SecurityConfig(zid_cache=str(tmp_path / "zid.json")),
            display=DisplayConfig(driver="none"),
            phone=PhoneConfig(speed_dials={"1": f"sips:{name}@127.0.0.1:5999"}),
        )

    statuses: list[str] = []

    async def main() -> tuple[object, object]:
        phone = Phone(config("bob"), statuses.append)
        await phone.start()
        first = phone.controller
        await phone.reconfigure(config("carol"))
        second = phone.controller
        await phone.stop()
        return first, second

    first, second = asyncio.run(main())
    assert first is not None and second is not None and first is not second
    assert statuses == [
        "no account, direct calls only",
        "no account, direct calls only",
        "stopping",
    ]


class Notifications:
    """A service manager that keeps what it hears."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    def ready(self) -> None:
        self.heard.append("READY=1")

    def status(self, text: str) -> None:
        self.heard.append(f"STATUS={text}")

    def watchdog(self) -> None:
        pass

    def stopping(self) -> None:
        self.heard.append("STOPPING=1")

    def reloading(self) -> None:
        self.heard.append("RELOADING=1")

    def watchdog_interval(self) -> float | None:
        return None


def test_sighup_during_a_call_keeps_the_call_and_applies_the_config_after_it(
    tmp_path: Path,
) -> None:
    pki = make_test_pki(tmp_path / "pki", ["127.0.0.1"], client_name="127.0.0.1")
    port = free_port()
    callee = Config(
        hardware="simulated",
        server=ServerConfig(
            listen=f"127.0.0.1:{port}",
            client_cert=str(pki.server_cert),
            client_key=str(pki.server_key),
            listen_ca_file=str(pki.ca_cert),
            keepalive_interval=0,
        ),
        security=SecurityConfig(zid_cache=str(tmp_path / "bob.json")),
        sim=SimConfig(tone_frequency=700),
        audio=AudioConfig(secure_tone=False),  # what it hears is the caller's tone alone
    )
    script = tmp_path / "keys.txt"
    script.write_text("0.3 lift\n0.2 speed1\n")

    def caller(speed_dial: str, sim: SimConfig) -> Config:
        return Config(
            hardware="simulated",
            server=ServerConfig(
                ca_file=str(pki.ca_cert),
                client_cert=str(pki.client_cert),
                client_key=str(pki.client_key),
                keepalive_interval=0,
            ),
            security=SecurityConfig(zid_cache=str(tmp_path / "alice.json")),
            phone=PhoneConfig(speed_dials={"1": speed_dial}),
            display=DisplayConfig(driver="none"),
            sim=sim,
        )

    sim = SimConfig(tone_frequency=1000, keys_script=str(script))
    first = caller(f"sips:bob@127.0.0.1:{port}", sim)
    new_config = caller("sips:carol@127.0.0.1:5999", SimConfig())
    notifier = Notifications()
    service = Service(first, lambda: new_config, "", notifier)
    events: list[object] = []

    async def until(check: type, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not any(isinstance(e, check) for e in events):
                await asyncio.sleep(0.02)

    async def main() -> dict[str, object]:
        out = io.StringIO()
        answering = asyncio.create_task(
            _answer(argparse.Namespace(count=1, duration=30.0, json=True), callee, out)
        )
        await asyncio.sleep(0.3)
        running = asyncio.create_task(service.main())
        async with asyncio.timeout(10):
            while service.phone.controller is None:
                await asyncio.sleep(0.01)
        engine = service.phone.controller
        engine.add_listener(events.append)
        await until(CallSecure)
        (call,) = engine.calls()
        received = (await engine.media_stats(call)).packets_received

        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(5):
            while notifier.heard.count("READY=1") < 2:  # the reload is done
                await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)
        # The same engine still carries the same call, audio still arriving, one SAS only.
        assert service.phone.controller is engine
        assert engine.calls() == [call] and call.state == CallState.CONNECTED
        assert (await engine.media_stats(call)).packets_received >= received + 25
        assert sum(isinstance(e, CallSecure) for e in events) == 1
        assert service.phone.config is not new_config

        engine.hangup(call.call_id)
        await asyncio.wait_for(answering, 10)
        async with asyncio.timeout(5):
            while service.phone.config is not new_config or service.phone.controller is engine:
                await asyncio.sleep(0.02)
        assert service.phone.controller is not None and not service.phone.controller.calls()
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(running, 10) == 0
        secure = next(e for e in events if isinstance(e, CallSecure))
        report: dict[str, object] = json.loads(out.getvalue())
        report["caller_sas"] = secure.secured.sas
        return report

    report = asyncio.run(main())
    assert report["state"] == "secure" and report["sas"] == report["caller_sas"]
    assert abs(report["received_frequencies"][0] - 1000) <= 25  # type: ignore[index]
    assert any(isinstance(e, CallFinished) for e in events)
    assert notifier.heard[-1] == "STOPPING=1"


def test_sighup_applies_the_new_log_level(tmp_path: Path) -> None:
    """docs/troubleshooting.md: change logging.level and send SIGHUP, no restart needed."""
    import dataclasses
    import logging

    base = Config(
        hardware="simulated",
        security=SecurityConfig(zid_cache=str(tmp_path / "zid.json")),
        display=DisplayConfig(driver="none"),
        logging=LoggingConfig(level="warning"),
    )
    louder = dataclasses.replace(base, logging=LoggingConfig(level="debug"))
    notifier = Notifications()
    service = Service(base, lambda: louder, "", notifier)
    root = logging.getLogger("pidphone")
    before = root.level

    async def main() -> int:
        root.setLevel(logging.WARNING)  # as `pidphone run` set it from the first config
        running = asyncio.create_task(service.main())
        async with asyncio.timeout(10):
            while "READY=1" not in notifier.heard:
                await asyncio.sleep(0.02)
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(10):
            while notifier.heard.count("READY=1") < 2:
                await asyncio.sleep(0.02)
        level = root.level
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(running, 10) == 0
        return level

    try:
        assert asyncio.run(main()) == logging.DEBUG
    finally:
        root.setLevel(before)


def test_a_reload_does_not_play_the_keys_script_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The script dialled its speed dial at start; SIGHUP's reload used to play it again and
    place a second call."""
    import logging

    caplog.set_level(logging.INFO)
    script = tmp_path / "keys.txt"
    script.write_text("0.1 speed1\n")
    config = Config(
        hardware="simulated",
        phone=PhoneConfig(speed_dials={"1": "sips:nobody@127.0.0.1:9"}),
        security=SecurityConfig(zid_cache=str(tmp_path / "zid.json")),
        display=DisplayConfig(driver="none"),
        sim=SimConfig(keys_script=str(script)),
    )

    async def main() -> None:
        phone = Phone(config, lambda _: None)
        await phone.start()
        try:
            await asyncio.sleep(1.0)
            await phone.reconfigure(config)
            await asyncio.sleep(1.0)
        finally:
            await phone.stop()

    asyncio.run(main())
    calls = [r for r in caplog.records if r.getMessage().startswith("calling ")]
    assert len(calls) == 1, [r.getMessage() for r in caplog.records]
    assert any("was played already: not again" in r.getMessage() for r in caplog.records)
