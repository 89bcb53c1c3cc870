"""`pidphone call` against `pidphone answer`: two pidphones over real TLS and UDP on loopback,
direct (no registrar), simulated audio: ZRTP secures the call, the SAS match, each side hears
the other's tone, and the JSON reports say so."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import socket
from pathlib import Path

import pytest

from pidphone import cli
from pidphone.cli.call import _answer, _call
from pidphone.cli.common import EXIT_MISMATCH
from pidphone.config import AccountConfig, Config, SecurityConfig, ServerConfig, SimConfig
from pidphone.drivers.certs import make_test_pki
from pidphone.drivers.tls import TlsClientConfig, TlsServerConfig, TlsTransport
from pidphone.drivers.zid_cache import FileZidCache
from pidphone.errors import ConfigError
from pidphone.sip.callers import CallerPolicy
from pidphone.wiring import tls_transport


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def configs(
    tmp_path: Path, policy: str = "require", hosts: tuple[str, ...] = ("127.0.0.1",)
) -> tuple[Config, Config, int]:
    pki = make_test_pki(tmp_path / "pki", list(hosts), client_name="127.0.0.1")
    port = free_port()
    callee = Config(
        hardware="simulated",
        server=ServerConfig(
            listen=f"127.0.0.1:{port}",
            client_cert=str(pki.server_cert),
            client_key=str(pki.server_key),
            ca_file=str(pki.ca_cert),
            listen_ca_file=str(pki.ca_cert),
            keepalive_interval=0,
        ),
        security=SecurityConfig(
            zid_cache=str(tmp_path / "bob-zid.json"),
            zrtp_policy=policy,  # type: ignore[arg-type]
        ),
        sim=SimConfig(tone_frequency=700),
    )
    caller = Config(
        hardware="simulated",
        server=ServerConfig(
            ca_file=str(pki.ca_cert),
            client_cert=str(pki.client_cert),
            client_key=str(pki.client_key),
            keepalive_interval=0,
        ),
        security=SecurityConfig(
            zid_cache=str(tmp_path / "alice-zid.json"),
            zrtp_policy=policy,  # type: ignore[arg-type]
        ),
        sim=SimConfig(tone_frequency=1000),
    )
    return caller, callee, port


async def call_and_answer(
    caller: Config, callee: Config, port: int, duration: float = 2.0
) -> tuple[int, str, int, str]:
    answer_out, call_out = io.StringIO(), io.StringIO()
    answer_args = argparse.Namespace(count=1, duration=30.0, json=True)
    call_args = argparse.Namespace(uri=f"sips:bob@127.0.0.1:{port}", duration=duration, json=True)
    answering = asyncio.create_task(_answer(answer_args, callee, answer_out))
    await asyncio.sleep(0.3)  # the listener is up
    call_status = await _call(call_args, caller, call_out)
    answer_status = await asyncio.wait_for(answering, 10)
    return call_status, call_out.getvalue(), answer_status, answer_out.getvalue()


def test_call_and_answer_over_tls_are_secure_with_tones_both_ways(tmp_path: Path) -> None:
    caller, callee, port = configs(tmp_path)
    call_status, call_out, answer_status, answer_out = asyncio.run(
        call_and_answer(caller, callee, port)
    )
    alice = json.loads(call_out)
    bob = json.loads(answer_out)
    assert call_status == 0 and answer_status == 0, (call_out, answer_out)
    assert alice["state"] == bob["state"] == "secure"
    assert alice["sas"] == bob["sas"] and len(alice["sas"]) == 4
    # the default offer puts X3M3 first: a post-quantum call, with AES3 and S512
    assert alice["key_agreement"] == bob["key_agreement"] == "X3M3"
    assert alice["post_quantum"] is bob["post_quantum"] is True
    assert alice["cipher"] == "AES3" and alice["hash"] == "S512" and alice["auth_tag"] == "HS80"
    # the default offer puts Opus first: a wideband call, 16 kHz audio on a 48 kHz RTP clock
    assert alice["codec"] == bob["codec"] == "opus"
    assert alice["rate"] == bob["rate"] == 16000 and alice["wideband"]
    assert alice["clock_rate"] == 48000
    assert abs(alice["received_frequencies"][0] - 700) <= 25
    assert abs(bob["received_frequencies"][0] - 1000) <= 25
    assert alice["packets_sent"] > 50 and bob["packets_received"] > 50
    assert set(bob["playout"]) == {
        "late",
        "lost",
        "concealed",
        "dropped",
        "resyncs",
        "delay_ms",
        "earpiece_late",
        "capture_skipped",
    }
    assert bob["playout"]["resyncs"] == 0 and 0 <= bob["playout"]["delay_ms"] <= 200
    assert bob["reason"] == "Hung up by peer"


def test_a_listener_on_every_interface_answers_over_ipv6_and_ipv4(tmp_path: Path) -> None:
    """server.listen = "0.0.0.0:PORT" is dual-stack: `pidphone call` reaches it over ::1 and
    over 127.0.0.1, and both calls are secure with audio."""
    caller, callee, port = configs(tmp_path, hosts=("127.0.0.1", "::1"))
    callee = dataclasses.replace(
        callee,
        server=dataclasses.replace(callee.server, listen=f"0.0.0.0:{port}"),
    )
    # a one-second call: the strongest tone the caller hears is the peer's only without the
    # secure tone
    caller = dataclasses.replace(caller, audio=dataclasses.replace(caller.audio, secure_tone=False))

    async def main(host: str) -> tuple[int, str]:
        out = io.StringIO()
        answering = asyncio.create_task(
            _answer(argparse.Namespace(count=1, duration=30.0, json=True), callee, io.StringIO())
        )
        await asyncio.sleep(0.3)
        args = argparse.Namespace(uri=f"sips:bob@{host}:{port}", duration=1.0, json=True)
        status = await _call(args, caller, out)
        await asyncio.wait_for(answering, 10)
        return status, out.getvalue()

    for host in ("[::1]", "127.0.0.1"):
        status, text = asyncio.run(main(host))
        report = json.loads(text)
        assert status == 0 and report["state"] == "secure", report
        assert abs(report["received_frequencies"][0] - 700) <= 25


def test_retained_secret_then_verified_sas_on_the_next_call(tmp_path: Path) -> None:
    caller, callee, port = configs(tmp_path)
    first = asyncio.run(call_and_answer(caller, callee, port, duration=0.5))
    alice, bob = json.loads(first[1]), json.loads(first[3])
    assert first[0] == first[2] == 0
    assert not alice["verified"] and not bob["verified"]
    # Both people compared the SAS and said so (what `pidphone zid verify PEER` does).
    FileZidCache(tmp_path / "alice-zid.json").set_verified(bytes.fromhex(alice["peer_zid"]), True)
    FileZidCache(tmp_path / "bob-zid.json").set_verified(bytes.fromhex(bob["peer_zid"]), True)

    second = asyncio.run(call_and_answer(caller, callee, port, duration=0.5))
    alice2, bob2 = json.loads(second[1]), json.loads(second[3])
    assert second[0] == second[2] == 0
    assert alice2["verified"] and bob2["verified"]
    assert not alice2["cache_mismatch"] and not bob2["cache_mismatch"]
    assert alice2["sas"] == bob2["sas"]


def test_human_readable_progress(tmp_path: Path) -> None:
    caller, callee, port = configs(tmp_path)

    async def main() -> str:
        out = io.StringIO()
        answering = asyncio.create_task(
            _answer(argparse.Namespace(count=1, duration=30.0, json=True), callee, io.StringIO())
        )
        await asyncio.sleep(0.3)
        args = argparse.Namespace(uri=f"sips:bob@127.0.0.1:{port}", duration=1.0, json=False)
        assert await _call(args, caller, out) == 0
        await answering
        return out.getvalue()

    text = asyncio.run(main())
    assert f"calling sips:bob@127.0.0.1:{port}" in text
    assert "SECURE PQ  SAS " in text  # X3M3, the default first choice of both
    assert "X3M3 AES3 HS80 S512" in text
    assert "result: OK" in text
    assert "received tones: " in text


def test_nobody_listening_fails_with_a_reason(tmp_path: Path) -> None:
    caller, _, port = configs(tmp_path)
    out = io.StringIO()
    args = argparse.Namespace(uri=f"sips:bob@127.0.0.1:{port}", duration=1.0, json=True)
    status = asyncio.run(_call(args, caller, out))
    report = json.loads(out.getvalue())
    assert status == 1
    assert report["state"] == "failed"
    assert report["reason"] == "Connection refused (TLS: refused)"


def test_a_host_without_a_route_is_unreachable_not_refused(tmp_path: Path) -> None:
    caller, _, _ = configs(tmp_path)
    out = io.StringIO()
    args = argparse.Namespace(uri="sips:bob@192.0.2.1:5061", duration=1.0, json=False)
    assert asyncio.run(_call(args, caller, out)) == 1
    assert "call ended: Unreachable" in out.getvalue()
    assert out.getvalue().rstrip().endswith("Unreachable (TLS: unreachable)")


def test_a_target_that_is_no_sip_address_fails_cleanly(tmp_path: Path) -> None:
    caller, _, _ = configs(tmp_path)
    out = io.StringIO()
    args = argparse.Namespace(uri="sips:", duration=1.0, json=True)
    assert asyncio.run(_call(args, caller, out)) == 1
    report = json.loads(out.getvalue())
    assert report["state"] == "failed" and "cannot call" in report["reason"]


def test_an_untrusted_certificate_is_named_in_the_report(tmp_path: Path) -> None:
    caller, callee, port = configs(tmp_path)
    other_ca = make_test_pki(tmp_path / "other", ["127.0.0.1"]).ca_cert
    caller = dataclasses.replace(
        caller, server=dataclasses.replace(caller.server, ca_file=str(other_ca))
    )

    async def main() -> tuple[int, str]:
        out = io.StringIO()
        answering = asyncio.create_task(
            _answer(argparse.Namespace(count=1, duration=5.0, json=True), callee, io.StringIO())
        )
        await asyncio.sleep(0.3)
        args = argparse.Namespace(uri=f"sips:bob@127.0.0.1:{port}", duration=1.0, json=True)
        status = await _call(args, caller, out)
        answering.cancel()
        return status, out.getvalue()

    status, text = asyncio.run(main())
    report = json.loads(text)
    assert status == 1 and report["state"] == "failed"
    assert report["reason"] == "Certificate untrusted (TLS: untrusted)"


def test_answer_without_account_or_listener_is_a_config_error(tmp_path: Path) -> None:
    caller, _, _ = configs(tmp_path)
    args = argparse.Namespace(count=1, duration=1.0, json=True)
    with pytest.raises(ConfigError, match=r"server\.listen"):
        asyncio.run(_answer(args, caller, io.StringIO()))


def test_a_listener_port_in_use_is_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, callee, port = configs(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        args = argparse.Namespace(count=1, duration=1.0, json=True)
        assert asyncio.run(_answer(args, callee, io.StringIO())) == 1
    assert "cannot start the phone" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("registrar", "outbound_proxy", "domain"),
    [
        ("example.org", "", "example.org"),
        ("example.org:5061", "", None),
        ("192.0.2.1", "", None),
        ("[2001:db8::1]", "", None),
        ("example.org", "proxy.example.net", "proxy.example.net"),
        ("example.org", "proxy.example.net:5061", None),
    ],
)
def test_only_a_next_hop_without_port_or_ip_is_discovered(
    registrar: str, outbound_proxy: str, domain: str | None
) -> None:
    server = ServerConfig(registrar=registrar, outbound_proxy=outbound_proxy)
    assert server.discovery_domain == domain


def test_a_registrar_domain_without_port_is_found_by_naptr_and_srv(tmp_path: Path) -> None:
    """RFC 3263 §4: the TLS flow to "example.org" goes where its SRV record says."""
    from tests.test_dns import ZONE, serve
    from tests.test_tls import Recorder

    pki = make_test_pki(tmp_path / "pki", ["example.org"])
    config = Config(
        account=AccountConfig(aor="sips:alice@example.org"),
        server=ServerConfig(registrar="example.org", ca_file=str(pki.ca_cert)),
    )

    async def main() -> None:
        server = TlsTransport(
            TlsClientConfig(),
            TlsServerConfig(
                str(pki.server_cert),
                str(pki.server_key),
                port=0,
                callers=CallerPolicy(anyone=True),
            ),
        )
        at_server = Recorder()
        await server.start(at_server)
        assert server.listening is not None
        zone = dict(ZONE)
        zone[("_sips._tcp.example.org", "SRV")] = [
            f"0 0 {server.listening[1]} primary.example.org."
        ]
        zone[("primary.example.org", "AAAA")] = []
        _, resolver, dns_transport = await serve(zone)
        client = tls_transport(config, dns_resolver=resolver)
        at_client = Recorder()
        await client.start(at_client)
        try:
            client.send(b"REGISTER", ("example.org", 5061))
            await at_server.until(lambda: any(e[0] == "data" for e in at_server.events))
            assert at_server.received() == b"REGISTER"
        finally:
            await client.aclose()
            await server.aclose()
            dns_transport.close()

    asyncio.run(main())


def test_a_cached_secret_mismatch_is_its_own_exit_status(tmp_path: Path) -> None:
    """Secure, but Bob's phone lost its secrets since the last call: exit 4 (compare the
    SAS), never 0; the result line says so."""
    caller, callee, port = configs(tmp_path)
    first = asyncio.run(call_and_answer(caller, callee, port, duration=0.5))
    assert first[0] == first[2] == 0
    bob = FileZidCache(tmp_path / "bob-zid.json")
    bob.forget(bytes.fromhex(json.loads(first[3])["peer_zid"]))  # Bob's secrets are gone

    async def main() -> tuple[int, str]:
        out = io.StringIO()
        answering = asyncio.create_task(
            _answer(argparse.Namespace(count=1, duration=30.0, json=True), callee, io.StringIO())
        )
        await asyncio.sleep(0.3)
        args = argparse.Namespace(uri=f"sips:bob@127.0.0.1:{port}", duration=0.5, json=False)
        status = await _call(args, caller, out)
        await answering
        return status, out.getvalue()

    status, text = asyncio.run(main())
    assert status == EXIT_MISMATCH == 4
    assert "WARNING: cached secret mismatch" in text
    assert "result: SECURE, CACHED SECRET MISMATCH: compare the SAS: Hung up" in text


def test_the_result_line_always_gives_the_reason(tmp_path: Path) -> None:
    caller, _, port = configs(tmp_path)
    out = io.StringIO()
    args = argparse.Namespace(uri=f"sips:bob@127.0.0.1:{port}", duration=1.0, json=False)
    assert asyncio.run(_call(args, caller, out)) == 1
    (result,) = [line for line in out.getvalue().splitlines() if line.startswith("result:")]
    assert result.startswith("result: FAILED (failed): ") and len(result) > 30, result


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["call", "not a uri"], "is neither a SIP address nor a number"),
        (["call", "1234"], "has no host and there is no account to complete it"),
        (["call", "sips:bob@127.0.0.1", "--duration", "-5"], "-5 is not above zero"),
        (["call", "sips:bob@127.0.0.1", "--duration", "soon"], "'soon' is not a number"),
        (["answer", "--count", "0"], "0 is not above zero"),
    ],
)
def test_bad_arguments_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    """Exit 2 before anything is dialled: "1234" with no account once went to
    sips:1234@127.0.0.1:5061 without a word."""
    config = tmp_path / "pidphone.toml"
    config.write_text('hardware = "simulated"\n')
    assert cli.main([*argv, "-c", str(config)]) == 2
    assert said in capsys.readouterr().err


def test_an_sdes_offer_is_refused_for_what_it_is_and_answer_returns(tmp_path: Path) -> None:
    """An offer with only RTP/SAVP audio (keys in the SDP) is answered 488 naming SDES, not
    "No common codec"; `answer --count 1` counts it and returns."""
    caller, callee, port = configs(tmp_path)
    client = (caller.server.ca_file, caller.server.client_cert, caller.server.client_key)
    offer = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    )

    async def main() -> tuple[int, str, bytes]:
        out = io.StringIO()
        answering = asyncio.create_task(
            _answer(argparse.Namespace(count=1, duration=5.0, json=True), callee, out)
        )
        await asyncio.sleep(0.3)
        reply = await _send_invite(port, client, offer)
        status = await asyncio.wait_for(answering, 10)
        return status, out.getvalue(), reply

    status, text, reply = asyncio.run(main())
    assert reply.startswith(b"SIP/2.0 488")
    report = json.loads(text)
    assert status == 1 and report["state"] == "failed"
    assert report["reason"] == "refused: Caller wants SDES-SRTP keys (never accepted: ZRTP only)"


async def _send_invite(port: int, client: tuple[str, str, str], sdp: str) -> bytes:
    """One INVITE over TLS, as a peer that offers SDES would send it; its first final answer."""
    import ssl

    ca_file, cert, key = client
    context = ssl.create_default_context(cafile=ca_file)
    context.load_cert_chain(cert, key)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    body = sdp.encode()
    invite = (
        f"INVITE sips:bob@127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 127.0.0.1:5099;branch=z9hG4bK-sdes-1\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sips:carol@127.0.0.1>;tag=c1\r\n"
        f"To: <sips:bob@127.0.0.1:{port}>\r\n"
        "Call-ID: sdes-offer-1@127.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sips:carol@127.0.0.1:5099;transport=tls>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    writer.write(invite)
    try:
        async with asyncio.timeout(5):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"SIP/2.0 1"):
                    return head
    finally:
        writer.close()
