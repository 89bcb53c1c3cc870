"""The account's password in the agent (RFC 3261 §22): which challenges it answers and which
requests carry credentials.

The password answers only the account's registrar or outbound proxy (the flow whose server
certificate TLS checked against it), and only in the account's realms: a response computed
from it lets whoever holds it try passwords offline, and a host the user merely dialled, or a
server behind the proxy, must get nothing of the sort. Among the acceptable challenges the
strongest algorithm wins (RFC 8760). Once the registrar challenges a request other than
REGISTER it wants credentials on every request, and gets them up front on its flow (§22.3).
"""

from __future__ import annotations

from pidphone.sip.agent_config import AgentConfig
from pidphone.sip.auth import Challenge, DigestCredentials, best_challenge, parse_authorization
from pidphone.sip.errors import SipParseError
from pidphone.sip.events import readable_reason
from pidphone.sip.message import Header, Request, Response
from pidphone.sip.methods import Method
from pidphone.sip.uri import Uri, format_host

Address = tuple[str, int]

AUTH_FAILED = "Authentication failed"
"""Why a request the registrar keeps challenging is given up: the password is wrong."""
MAX_AUTH_ATTEMPTS = 2
"""Credentials sent for one request before its challenge means a wrong password."""


def _printable(text: str, limit: int = 32) -> str:
    """A peer's text fit for the screen: printable characters only, and not too many."""
    return "".join(c for c in text[:limit] if c.isprintable())


class AccountAuth:
    """The account's credentials, and the rules for giving them out (module docstring)."""

    def __init__(self, config: AgentConfig, aor: Uri) -> None:
        self._registrar = config.registrar
        username = config.auth_user or aor.user or ""
        self._credentials = (
            DigestCredentials(username, config.password) if config.password is not None else None
        )
        self._realms = frozenset(
            realm.lower() for realm in (aor.host.strip("[]"), *config.auth_realms)
        )
        """The realms whose challenges the password answers (compared in lower case)."""
        self._everything = False
        """Set once a request other than REGISTER is challenged by the registrar."""

    def wanted_on_everything(self) -> None:
        """The registrar challenged a request other than REGISTER (§22.3)."""
        self._everything = True

    def applies_to(self, method: Method) -> bool:
        """Whether a new `method` request carries credentials (on flows that challenged us)."""
        if self._credentials is None:
            return False
        if method is Method.REGISTER:
            return True
        return self._everything and method not in (Method.ACK, Method.CANCEL)

    def headers(self, flow: Address, method: Method, uri: Uri, cnonce: str) -> list[Header]:
        """Authorization headers for a new request on `flow` (none for a flow that never
        challenged us)."""
        if self._credentials is None:
            return []
        return self._credentials.headers(flow, method, str(uri), cnonce)

    def learn(self, request: Request, flow: Address, resp: Response) -> str | None:
        """Take the best challenge of a 401/407 that came on `flow`; None when the request can
        go again with credentials, else why it cannot (for the screen)."""
        if self._credentials is None:
            return readable_reason(resp.status, resp.reason)
        if flow != self._registrar:
            return f"Password not sent to a stranger ({format_host(*flow)} is not your registrar)"
        proxy = resp.status == 407
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenges: list[Challenge] = []
        for value in resp.header_values(name):
            try:
                challenges.append(Challenge.parse(value, proxy=proxy))
            except SipParseError:
                continue
        ours = [c for c in challenges if c.realm.lower() in self._realms]
        if challenges and not ours:
            realm = _printable(challenges[0].realm)
            return f'Password not sent: other realm ("{realm}" is not yours)'
        best = best_challenge(ours)
        if best is None:
            return "Authentication failed: no digest challenge pidphone can answer"
        answered: set[str] = set()
        for value in request.header_values("Proxy-Authorization" if proxy else "Authorization"):
            try:
                params = parse_authorization(value)
            except SipParseError:
                continue
            if params.get("realm") == best.realm and "nonce" in params:
                answered.add(params["nonce"])
        learned = self._credentials.learn(best, flow=flow, answered_nonces=frozenset(answered))
        return None if learned else AUTH_FAILED
