"""SystemdNotifier against a real unix datagram socket standing in for systemd."""

from __future__ import annotations

import io
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pidphone.drivers.logging_setup import (
    FieldsFormatter,
    call_fields,
    setup_logging,
    under_journald,
)
from pidphone.drivers.systemd_notify import NullNotifier, SystemdNotifier, notifier_from_environment


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_notifications_reach_the_socket(notify_socket: socket.socket) -> None:
    notifier = SystemdNotifier()
    notifier.ready()
    notifier.status("registered as sip:alice@example.org\nin call")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()
    received = [notify_socket.recv(4096) for _ in range(5)]
    assert received == [
        b"READY=1",
        b"STATUS=registered as sip:alice@example.org in call",
        b"WATCHDOG=1",
        b"RELOADING=1",
        b"STOPPING=1",
    ]


def test_socket_pointing_nowhere_is_tolerated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    notifier = SystemdNotifier()
    with caplog.at_level(logging.WARNING, logger="pidphone.systemd"):
        notifier.ready()
        notifier.watchdog()
    assert len(caplog.records) == 1  # said once, then quiet
    assert "cannot notify systemd (READY)" in caplog.records[0].getMessage()


def test_no_socket_sends_nothing() -> None:
    sent: list[str] = []

    def send(state: str) -> bool:
        sent.append(state)
        return True

    notifier = SystemdNotifier({}, send=send)
    notifier.ready()
    notifier.stopping()
    assert sent == []


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], interval: float | None
) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "/run/x", **env}, pid=4242)
    assert notifier.watchdog_interval() == interval


def test_environment_picks_the_notifier(tmp_path: Path) -> None:
    assert isinstance(notifier_from_environment({}), NullNotifier)
    chosen = notifier_from_environment({"NOTIFY_SOCKET": str(tmp_path / "s")})
    assert isinstance(chosen, SystemdNotifier)
    null = NullNotifier()
    null.ready()
    null.status("x")
    null.watchdog()
    null.reloading()
    null.stopping()
    assert null.watchdog_interval() is None


def test_stderr_logging_appends_structured_fields() -> None:
    stream = io.StringIO()
    setup_logging("debug", journal_=False, stream=stream)
    log = logging.getLogger("pidphone.test")
    log.info("call ended", extra=call_fields(call_id="abc@host", peer="sip:bob@example.org"))
    log.debug("plain")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(
        "INFO pidphone.test: call ended [CALL_ID=abc@host PEER=sip:bob@example.org]"
    )
    assert lines[1].endswith("DEBUG pidphone.test: plain")
    assert call_fields() == {}


def test_journal_handler_sends_fields() -> None:
    sent: list[dict[str, object]] = []

    handler = setup_logging("info", journal_=True)
    handler.send = lambda text, **fields: sent.append({"MESSAGE": text, **fields})  # type: ignore[attr-defined]
    logging.getLogger("pidphone.test").warning("hello", extra=call_fields("id1", "sip:b@x"))
    assert sent[0]["MESSAGE"] == "hello"
    assert sent[0]["CALL_ID"] == "id1"
    assert sent[0]["PEER"] == "sip:b@x"
    assert sent[0]["SYSLOG_IDENTIFIER"] == "pidphone"


def test_journald_detection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert not under_journald({})
    with open(tmp_path / "err", "w") as err:
        monkeypatch.setattr("sys.stderr", err)
        st = os.fstat(err.fileno())
        assert under_journald({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not under_journald({"JOURNAL_STREAM": "1:2"})


def test_formatter_without_fields() -> None:
    record = logging.LogRecord("pidphone", logging.INFO, __file__, 1, "m", None, None)
    assert FieldsFormatter("%(message)s").format(record) == "m"


def test_a_status_with_a_callers_control_characters_is_one_printable_line(
    notify_socket: socket.socket,
) -> None:
    """STATUS= shows the caller's SIP address, which the caller writes: a NUL made
    sd_notify raise (ValueError) into the phone, a newline would start another assignment."""
    notifier = SystemdNotifier()
    notifier.status("ringing: sips:b\x00ob@example.org\nWATCHDOG=1\x1b[2J\u2028x")
    notifier.status("registered: " + "a" * 5000)
    assert notify_socket.recv(4096) == b"STATUS=ringing: sips:b ob@example.org WATCHDOG=1 [2J x"
    assert notify_socket.recv(8192) == b"STATUS=registered: " + b"a" * 188
