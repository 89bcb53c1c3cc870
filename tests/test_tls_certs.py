"""The throw-away PKI and the pinning helpers."""

from __future__ import annotations

import ipaddress
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from pidphone.drivers.certs import make_test_pki, parse_fingerprint, pem_fingerprint


def test_server_certificate_names_ip_twice_for_mbedtls(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path)
    certificate = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["127.0.0.1", "localhost"]
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    certificate.verify_directly_issued_by(ca)
    for key in (pki.ca_key, pki.server_key, pki.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_openssl_verifies_the_chain_and_agrees_on_the_fingerprint(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path, hosts=["sip.example.org"])
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(pki.ca_cert),
            str(pki.server_cert),
            str(pki.client_cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    printed = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(pki.server_cert)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed.strip().split("=", 1)[1] == pem_fingerprint(pki.server_cert.read_bytes())
    assert parse_fingerprint(printed) == bytes.fromhex(printed.split("=")[1].replace(":", ""))


@pytest.mark.parametrize(
    "text", ["ab" * 32, "AB:" * 31 + "AB", "sha256 Fingerprint=" + "ab:" * 31 + "ab", " AB" * 32]
)
def test_fingerprint_forms(text: str) -> None:
    assert parse_fingerprint(text) == b"\xab" * 32


@pytest.mark.parametrize(("text", "message"), [("abc", "64 hex"), ("ab" * 20, "has 20")])
def test_bad_fingerprints(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fingerprint(text)
