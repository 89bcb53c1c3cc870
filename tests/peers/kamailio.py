"""Kamailio as a SIP-over-TLS registrar and record-routing proxy on 127.0.0.1, for tests.

    with private_network():
        kamailio = Kamailio(workdir, pki)          # users alice/alicepw, bob/bobpw, ...
        kamailio.start()
        ... register to kamailio.address ...
        kamailio.restart()                         # the registrar goes away and comes back
        kamailio.stop()

The configuration is tests/peers/kamailio.cfg (with the pitfalls of Kamailio over TLS solved:
no port-less alias, fix_nated_register, add_contact_alias); the users are
written into a copy in `workdir`. Kamailio runs in the foreground (-DD) under `timeout`, so it
never outlives its bound, and it is stopped by its PID only.
"""

from __future__ import annotations

import contextlib
import glob
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Self

from pidphone.drivers.certs import Pki

CONFIG = Path(__file__).with_name("kamailio.cfg")
DBTEXT_TABLES = Path("/usr/share/kamailio/dbtext/kamailio")

DEFAULT_USERS = {
    "alice": "alicepw",
    "bob": "bobpw",
    "carol": "carolpw",
    "dave": "davepw",
    "linphone": "linphonepw",
    "lin2": "lin2pw",
}
"""Test accounts: username → password (realm and domain 127.0.0.1)."""

MAX_LIFETIME = 900
"""Seconds after which `timeout` kills Kamailio whatever happens to the test."""

TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {cert}
ca_list = {ca}

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
"""


def tls_module() -> str:
    """Where Debian's kamailio-tls-modules put tls.so on this architecture."""
    found = sorted(glob.glob("/usr/lib/*/kamailio/modules/tls.so"))
    return found[0] if found else "/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so"


class KamailioError(RuntimeError):
    """Kamailio did not start; the message holds the end of its log."""


class Kamailio:
    """One Kamailio on 127.0.0.1 (TLS on `tls_port`, UDP/TCP on `udp_port`)."""

    def __init__(
        self,
        workdir: Path,
        pki: Pki,
        *,
        tls_port: int = 5061,
        udp_port: int = 5060,
        users: Mapping[str, str] = DEFAULT_USERS,
        auth: bool = True,
        invite_auth: bool = False,
        realm: str | None = None,
        presence: bool = False,
    ) -> None:
        self.workdir = workdir
        self.pki = pki
        self.tls_port = tls_port
        self.udp_port = udp_port
        self.users = dict(users)
        self.auth = auth
        self.invite_auth = invite_auth
        self.realm = realm
        """The digest realm of its challenges; None: 127.0.0.1, the users' domain."""
        self.presence = presence
        """Serve message-summary (presence + presence_mwi): PUBLISH over UDP/TCP from the
        voicemail system, SUBSCRIBE over TLS from the phones."""
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "kamailio.log"
        self._starts = 0

    @property
    def address(self) -> tuple[str, int]:
        """Where SIP over TLS reaches it."""
        return ("127.0.0.1", self.tls_port)

    def _write_config(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        users = "\n    ".join(
            f'$sht(passwd=>{name}) = "{password}";' for name, password in self.users.items()
        )
        (self.workdir / "kamailio.cfg").write_text(CONFIG.read_text().replace("@USERS@", users))
        (self.workdir / "tls.cfg").write_text(
            TLS_CFG.format(key=self.pki.server_key, cert=self.pki.server_cert, ca=self.pki.ca_cert)
        )
        args = [
            "-f",
            str(self.workdir / "kamailio.cfg"),
            "-A",
            f'CTL_SOCK="unix:{self.workdir}/kamailio_ctl"',
            "-A",
            f'TLS_CFG="{self.workdir}/tls.cfg"',
            "-A",
            f"TLS_PORT={self.tls_port}",
            "-A",
            f"UDP_PORT={self.udp_port}",
        ]
        if self.presence:
            args += [
                "-A",
                "WITH_PRESENCE",
                "-A",
                f'PRESENCE_DB="text://{self._presence_db()}"',
                "-A",
                f'PRESENCE_SERVER="sip:127.0.0.1:{self.tls_port};transport=tls"',
            ]
        if self.realm is not None:
            args += ["-A", f'AUTH_REALM="{self.realm}"']
        if self.auth:
            args += ["-A", "WITH_AUTH"]
            if self.invite_auth:
                args += ["-A", "WITH_INVITE_AUTH"]
        return args

    def _presence_db(self) -> Path:
        """db_text tables for the presence module (Debian's, from the kamailio package)."""
        db = self.workdir / "presence-db"
        db.mkdir(exist_ok=True)
        for table in ("version", "presentity", "active_watchers", "watchers"):
            shutil.copyfile(DBTEXT_TABLES / table, db / table)
        return db

    def start(self, timeout: float = 15.0) -> None:
        """Start and wait until the TLS port accepts connections."""
        if self.process is not None:
            raise RuntimeError("Kamailio is already running")
        program = shutil.which("kamailio")
        if program is None:
            raise KamailioError("kamailio is not installed")
        args = self._write_config()
        check = subprocess.run(
            [program, "-c", *args], capture_output=True, text=True, timeout=30, check=False
        )
        if check.returncode != 0:
            raise KamailioError(f"kamailio -c failed:\n{check.stderr[-3000:]}")
        self._starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"---- start {self._starts}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    "timeout",
                    "--kill-after=5",
                    str(MAX_LIFETIME),
                    program,
                    *args,
                    "-DD",
                    "-E",
                    "-Y",
                    str(self.workdir),
                    "-P",
                    str(self.workdir / "kamailio.pid"),
                    "-m",
                    "64",
                    "-M",
                    "8",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise KamailioError(f"Kamailio did not listen on TLS:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    @contextlib.contextmanager
    def started(self) -> Iterator[Self]:
        """`start`, and `stop` when the body is done, however it ends."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def _listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(self.address, timeout=1):
            return True
        return False

    def stop(self) -> None:
        """SIGTERM to the process we started (Kamailio stops its children), then wait."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        # the main process is gone; wait until no child holds the port any more
        deadline = time.monotonic() + 10
        while self._listening() and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        """Everything Kamailio wrote so far (all starts)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def requests(self, method: str) -> list[str]:
        """The "REQ <method> <ruri> from <ip:port> proto=<p>" lines the config logs."""
        return [
            line[line.index("REQ ") :]
            for line in self.log().splitlines()
            if f"REQ {method} " in line
        ]
