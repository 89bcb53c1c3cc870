"""A phishing "registrar lookalike": a SIP-over-TLS server that asks every caller for digest
credentials and keeps whatever it is sent.

    python -m tests.peers.phisher --cert phisher.pem --key phisher.key --host 127.0.0.2 \\
        --port 5099 --log received.log

It holds a valid certificate for its own address (anyone can get one for a host they own), so
the TLS check passes: only the phone's digest policy stands between it and the password. Each
INVITE is answered with the next challenge set of `CHALLENGES`, in turn: every realm (the
account's, its own, empty), every algorithm (MD5, SHA-256, SHA-512-256 and -sess forms) and
qop (none, auth, auth-int), fresh nonces, as 407 Proxy-Authenticate, 401 WWW-Authenticate, or
both in one response. Every message received is appended to the log, raw, each preceded by a
line `==== <length>`. It prints `listening <port>` once ready and runs until killed.

It parses nothing with pidphone's code: it frames messages by Content-Length on its own, as an
independent server would.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import ssl
import sys
from pathlib import Path

REALMS = ("127.0.0.1", "phisher.example", "")
ALGORITHMS = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256")
QOPS = ("", 'qop="auth"', 'qop="auth,auth-int"')


def challenge_values(prefix: str) -> list[str]:
    """Every realm x algorithm x qop, each with its own nonce."""
    out = []
    for n, (realm, algorithm, qop) in enumerate(itertools.product(REALMS, ALGORITHMS, QOPS)):
        value = f'Digest realm="{realm}", nonce="{prefix}{n:03d}", algorithm={algorithm}'
        out.append(f"{value}, {qop}" if qop else value)
    return out


def challenge_sets() -> list[tuple[int, list[tuple[str, str]]]]:
    """What each INVITE gets, in turn: (status, challenge headers)."""
    proxy = [("Proxy-Authenticate", v) for v in challenge_values("p")]
    www = [("WWW-Authenticate", v) for v in challenge_values("w")]
    classic = [("Proxy-Authenticate", 'Digest realm="127.0.0.1", nonce="c1", algorithm=MD5')]
    return [(407, proxy), (401, www), (407, classic), (401, www + proxy)]


CHALLENGES = challenge_sets()
COPIED = ("via", "v", "from", "f", "call-id", "i", "cseq")
"""Headers a response copies from its request (besides To, which gets a tag)."""


def _name(line: str) -> str:
    return line.split(":", 1)[0].strip().lower()


class Phisher:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.invites = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        try:
            while data := await reader.read(65536):
                buffer += data
                while (message := self._next(buffer)) is not None:
                    buffer = buffer[len(message) :]
                    self._record(message)
                    answer = self._answer(message)
                    if answer:
                        writer.write(answer)
                buffer = buffer.lstrip(b"\r\n")
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _next(buffer: bytes) -> bytes | None:
        buffer = buffer.lstrip(b"\r\n")
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        length = 0
        for line in buffer[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                length = int(value.strip())
        total = end + 4 + length
        return buffer[:total] if len(buffer) >= total else None

    def _record(self, message: bytes) -> None:
        with self.log.open("ab") as out:
            out.write(b"==== %d\n" % len(message) + message + b"\n")

    def _answer(self, message: bytes) -> bytes:
        head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")
        method = head[0].split(" ", 1)[0]
        if method in ("ACK", "") or head[0].startswith("SIP/"):
            return b""
        copied = [line for line in head[1:] if _name(line) in COPIED]
        to = next(line for line in head[1:] if _name(line) in ("to", "t"))
        status, reason = 200, "OK"
        extra: list[tuple[str, str]] = []
        if method == "INVITE":
            status, extra = CHALLENGES[self.invites % len(CHALLENGES)]
            reason = "Proxy Authentication Required" if status == 407 else "Unauthorized"
            self.invites += 1
        lines = [f"SIP/2.0 {status} {reason}", *copied, f"{to};tag=phish{self.invites}"]
        lines += [f"{name}: {value}" for name, value in extra]
        lines += ["Server: totally-your-registrar/1.0", "Content-Length: 0", "", ""]
        return "\r\n".join(lines).encode()


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--host", default="127.0.0.2")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True, type=Path)
    args = parser.parse_args(argv)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    phisher = Phisher(args.log)
    server = await asyncio.start_server(phisher.serve, args.host, args.port, ssl=context)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
