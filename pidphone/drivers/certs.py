"""Throw-away certificates for the demo and the tests, and SHA-256 certificate pinning helpers.

`make_test_pki(directory)` writes a private CA and a server and a client certificate signed by
it. Every IP literal in `hosts` goes into the subjectAltName twice, as an iPAddress and as a
dNSName: linphone's mbedTLS 2.28 ignores iPAddress entries when it checks the name, while
Python's ssl checks the iPAddress one (RFC 6125 §6.4 allows either, per client).
Keys are ECDSA P-256: fast to make, and understood by OpenSSL (Kamailio) and mbedTLS (linphone).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
"""Names the default server certificate is valid for (loopback calls and the demo)."""


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key, in memory."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class Pki:
    """Paths of the files `make_test_pki` wrote."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    hosts: tuple[str, ...]


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pidphone test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _window(
    not_before: datetime.datetime | None, valid_days: float
) -> tuple[datetime.datetime, datetime.datetime]:
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    return start, start + datetime.timedelta(days=valid_days)


def make_ca(
    common_name: str = "pidphone test CA",
    *,
    valid_days: float = 30,
    not_before: datetime.datetime | None = None,
) -> Issued:
    """A self-signed CA certificate that may sign end-entity certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _window(not_before, valid_days)
    name = _name(common_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """dNSName for every host, plus an iPAddress entry for IP literals (see the module doc)."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        with contextlib.suppress(ValueError):
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        names.append(x509.DNSName(host))
    return names


def issue(
    ca: Issued,
    hosts: Sequence[str],
    *,
    client: bool = False,
    uris: Sequence[str] = (),
    valid_days: float = 30,
    not_before: datetime.datetime | None = None,
) -> Issued:
    """An end-entity certificate for `hosts` signed by `ca`, for a server (default) or client;
    `uris` go into its subjectAltName too ("sips:alice@example.org": a SIP identity)."""
    if not hosts:
        raise ValueError("a certificate needs at least one host name")
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _window(not_before, valid_days)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [*subject_alt_names(hosts), *(x509.UniformResourceIdentifier(u) for u in uris)]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(certificate, key)


def write_pair(issued: Issued, cert_path: Path, key_path: Path) -> None:
    """Write a certificate (0644) and its key (0600, never readable by others)."""
    cert_path.write_bytes(issued.pem)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(issued.key_pem)


def make_test_pki(
    directory: str | os.PathLike[str],
    hosts: Sequence[str] = DEFAULT_HOSTS,
    *,
    client_name: str = "pidphone",
    client_uris: Sequence[str] = (),
    valid_days: float = 30,
) -> Pki:
    """Create `directory` with ca.pem/ca.key, server.pem/server.key (for `hosts`) and
    client.pem/client.key (for `client_name` and the SIP identities `client_uris`), and
    return their paths."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    ca = make_ca(valid_days=valid_days)
    server = issue(ca, hosts, valid_days=valid_days)
    client = issue(ca, [client_name], client=True, uris=client_uris, valid_days=valid_days)
    pki = Pki(
        directory=root,
        ca_cert=root / "ca.pem",
        ca_key=root / "ca.key",
        server_cert=root / "server.pem",
        server_key=root / "server.key",
        client_cert=root / "client.pem",
        client_key=root / "client.key",
        hosts=tuple(hosts),
    )
    write_pair(ca, pki.ca_cert, pki.ca_key)
    write_pair(server, pki.server_cert, pki.server_key)
    write_pair(client, pki.client_cert, pki.client_key)
    return pki


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint of a DER certificate as OpenSSL prints it ("AB:CD:...")."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def pem_fingerprint(pem: bytes) -> str:
    """`fingerprint` of the first certificate in a PEM file's contents."""
    certificate = x509.load_pem_x509_certificate(pem)
    return fingerprint(certificate.public_bytes(serialization.Encoding.DER))


def parse_fingerprint(text: str) -> bytes:
    """The 32 bytes of a configured SHA-256 pin. Accepts "AB:CD:..", "abcd..", and OpenSSL's
    "sha256 Fingerprint=AB:..." line; raises ValueError naming the problem otherwise."""
    value = text.strip()
    if "=" in value:
        value = value.split("=", 1)[1]
    value = value.replace(":", "").replace(" ", "")
    try:
        digest = bytes.fromhex(value)
    except ValueError:
        raise ValueError("a SHA-256 fingerprint is 64 hex digits, colons allowed") from None
    if len(digest) != 32:
        raise ValueError(f"a SHA-256 fingerprint is 32 bytes, this one has {len(digest)}")
    return digest
