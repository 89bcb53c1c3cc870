"""Who may call the phone's own TLS listener directly (no registrar in between).

A stranger who reaches that port could otherwise ring the phone at any hour under any name he
likes. The listener's TLS handshake asks for a client certificate that verifies against a CA
the owner chose (or the callers' own certificates); `CallerPolicy` decides the rest from what
the certificate says:

- `certificate_refusal`, right after the handshake (by the TLS driver): with an allow-list,
  the certificate must be one of its SHA-256 fingerprints or vouch for one of its SIP
  identities; a flow that fails carries no SIP byte.
- `caller_refusal`, for each request that starts something on such a flow (by the agent): the
  From must be an identity the certificate vouches for (RFC 5922 §7.1: a subjectAltName URI
  `sip:bob@example.org`, or the domain as a URI or DNS name), and on the allow-list when it
  lists identities. A certificate pinned by fingerprint speaks for whatever it claims.

`CallerPolicy(anyone=True)` opts out: any TLS client may call, its From unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass

from pidphone.sip.errors import SipParseError
from pidphone.sip.uri import Uri


@dataclass(frozen=True)
class PeerCertificate:
    """What TLS verified about the other end of an accepted connection."""

    sha256: bytes
    """The SHA-256 fingerprint of the certificate (DER)."""
    uris: tuple[str, ...] = ()
    """subjectAltName URIs ("sip:bob@example.org")."""
    dns_names: tuple[str, ...] = ()
    """subjectAltName DNS names ("example.org")."""

    def vouches_for(self, uri: Uri) -> bool:
        """Whether the certificate names this SIP identity: the very user, or its domain."""
        if uri.opaque is not None or not uri.host:
            return False
        host = uri.host.lower()
        if any(name.lower().rstrip(".") == host.rstrip(".") for name in self.dns_names):
            return True
        for text in self.uris:
            try:
                named = Uri.parse(text)
            except SipParseError:
                continue
            if named.opaque is not None or named.host.lower() != host:
                continue
            if named.user is None or named.user == uri.user:
                return True
        return False


@dataclass(frozen=True)
class CallerPolicy:
    """Which direct callers the listener admits (see the module docstring)."""

    anyone: bool = False
    """Admit any TLS client, with or without a certificate, and believe its From."""
    fingerprints: frozenset[bytes] = frozenset()
    """SHA-256 fingerprints of the certificates admitted whatever identity they claim."""
    identities: tuple[Uri, ...] = ()
    """SIP identities admitted when the certificate vouches for them."""

    @property
    def listed(self) -> bool:
        return bool(self.fingerprints or self.identities)

    def certificate_refusal(self, certificate: PeerCertificate | None) -> str | None:
        """Why a caller with this (already verified) certificate is not let in, or None."""
        if self.anyone:
            return None
        if certificate is None:
            return "no client certificate"
        if not self.listed or certificate.sha256 in self.fingerprints:
            return None
        if any(certificate.vouches_for(identity) for identity in self.identities):
            return None
        return "certificate not on the allow-list"

    def caller_refusal(self, certificate: PeerCertificate | None, caller: Uri) -> str | None:
        """Why a request from `caller` (its From) on a flow with `certificate` is refused."""
        if self.anyone:
            return None
        if certificate is None:
            return "no client certificate"
        if certificate.sha256 in self.fingerprints:
            return None
        if not certificate.vouches_for(caller):
            return f"{caller.user or ''}@{caller.host} is not the identity of the certificate"
        if self.identities and not any(_same_identity(caller, i) for i in self.identities):
            return f"{caller.user or ''}@{caller.host} is not on the allow-list"
        return None


def _same_identity(caller: Uri, listed: Uri) -> bool:
    """The caller is the listed user, or in the listed domain when no user is listed."""
    if caller.host.lower() != listed.host.lower():
        return False
    return listed.user is None or listed.user == caller.user
