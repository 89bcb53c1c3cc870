"""SIP requests and responses (RFC 3261 §7): the typed model, `parse_message` and the one
serializer (`bytes(msg)`).

Headers are kept in wire order as (canonical name, value) pairs with folding undone.
Content-Length is not stored: it frames the body on parse and is always written from the body
on serialize, so it can never disagree. `parse_message` checks the headers every transaction
needs (Via, From, To, Call-ID, CSeq, Max-Forwards) so a parsed message is safe to route.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pidphone.sip.errors import SipParseError
from pidphone.sip.grammar import is_token, parse_number
from pidphone.sip.headers import LIST_HEADERS, CSeq, Via, canonical_name, split_list
from pidphone.sip.methods import Method
from pidphone.sip.uri import NameAddr, Uri

Header = tuple[str, str]

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}  # fmt: skip


PARSED_LISTS = ("Via", "Contact", "Route", "Record-Route")
MAX_LIST_ITEMS = 70
"""Entries each of `PARSED_LISTS` may hold: no real message went through more than 70 hops
(Max-Forwards) or returns that many bindings, and every entry costs a URI parse."""


def reason_phrase(status: int) -> str:
    """The RFC 3261 §21 phrase for `status`, or a generic one for its class."""
    return REASON_PHRASES.get(status) or REASON_PHRASES.get(status - status % 100, "Unknown")


class _MessageBase:
    """Header access shared by requests and responses."""

    headers: tuple[Header, ...]
    body: bytes

    @cached_property
    def _index(self) -> dict[str, list[str]]:
        """Raw values by lower-case canonical name, built once per message."""
        index: dict[str, list[str]] = {}
        for n, v in self.headers:
            index.setdefault(n.lower(), []).append(v)
        return index

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any spelling or compact form), or None.

        For a list header the first list item is returned."""
        key = canonical_name(name).lower()
        values = self._index.get(key)
        if not values:
            return None
        if key in LIST_HEADERS:
            for v in values:
                items = split_list(v)
                if items:
                    return items[0]
            return None
        return values[0]

    def header_values(self, name: str) -> list[str]:
        """Every value of header `name`, list headers split on commas, in wire order."""
        key = canonical_name(name).lower()
        values = self._index.get(key, [])
        if key not in LIST_HEADERS:
            return list(values)
        out: list[str] = []
        for v in values:
            out.extend(split_list(v))
        return out

    @cached_property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.header_values("Via")]

    @cached_property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._required("From"))

    @cached_property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._required("To"))

    @cached_property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @cached_property
    def contacts(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.header_values("Contact")]

    @cached_property
    def record_routes(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.header_values("Record-Route")]

    def int_header(self, name: str) -> int | None:
        """A header holding a non-negative integer (Expires, Min-Expires, Max-Forwards)."""
        value = self.header(name)
        if value is None:
            return None
        return parse_number(value.strip(), canonical_name(name))

    def _required(self, name: str) -> str:
        value = self.header(name)
        if value is None:
            raise SipParseError(f"missing {name} header")
        return value

    def _head_bytes(self, start_line: str) -> bytes:
        lines = [start_line]
        lines.extend(f"{n}: {v}" for n, v in self.headers if n != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8")


@dataclass(frozen=True, eq=True)
class Request(_MessageBase):
    """A SIP request. `headers` exclude Content-Length (written from `body`)."""

    method: str
    uri: Uri
    headers: tuple[Header, ...] = ()
    body: bytes = b""

    def __bytes__(self) -> bytes:
        return self._head_bytes(f"{self.method} {self.uri} SIP/2.0") + self.body


@dataclass(frozen=True, eq=True)
class Response(_MessageBase):
    """A SIP response. `headers` exclude Content-Length (written from `body`)."""

    status: int
    reason: str = ""
    headers: tuple[Header, ...] = ()
    body: bytes = b""

    def __bytes__(self) -> bytes:
        return self._head_bytes(f"SIP/2.0 {self.status} {self.reason}") + self.body


Message = Request | Response


def split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the blank line ending the headers (CRLF CRLF, or LF LF from lax peers)."""
    end = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if end < 0 and lf < 0:
        raise SipParseError("no blank line after the headers")
    if end < 0 or (0 <= lf < end):
        return data[:lf], data[lf + 2 :]
    return data[:end], data[end + 4 :]


_CONTROL_BYTES = bytes(b for b in (*range(0x20), 0x7F) if b not in b"\t\r\n")
"""The CTLs of RFC 3261 §25.1 that no header may hold (CR and LF only as line ends)."""


def header_lines(head: bytes) -> tuple[str, list[Header]]:
    """Decode the head, undo folding (§7.3.1) and split `name: value` lines."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"headers are not UTF-8 ({exc.reason})") from None
    raw_lines = text.replace("\r\n", "\n").split("\n")
    if any("\r" in line for line in raw_lines):
        raise SipParseError("stray CR in the headers")
    start = raw_lines[0]
    unfolded: list[list[str]] = []  # each header's lines, joined once at the end
    for line in raw_lines[1:]:
        if line[:1] in (" ", "\t"):
            if not unfolded:
                raise SipParseError("continuation line before any header")
            unfolded[-1].append(line.strip(" \t"))
        else:
            unfolded.append([line])
    headers: list[Header] = []
    for lines in unfolded:
        line = lines[0] if len(lines) == 1 else _join_folded(lines)
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise SipParseError(f"bad header line {line[:60]!r}")
        headers.append((canonical_name(name), value.strip(" \t")))
    return start, headers


def _join_folded(lines: list[str]) -> str:
    """A header folded over several lines as one line: each fold is one space (§7.3.1)."""
    return " ".join([lines[0].rstrip(" \t"), *(part for part in lines[1:] if part)])


def content_length(headers: list[Header]) -> int | None:
    """The one Content-Length value, or None when absent; conflicting values are an error."""
    values = {v.strip() for n, v in headers if n == "Content-Length"}
    if not values:
        return None
    if len(values) > 1:
        raise SipParseError("conflicting Content-Length headers")
    return parse_number(values.pop(), "Content-Length", 9)


def parse_message(data: bytes) -> Request | Response:
    """Parse one whole SIP message. Raises SipParseError on anything malformed.

    A body longer than Content-Length is cut (§18.3); a shorter one is an error. With no
    Content-Length the rest of `data` is the body.
    """
    head, body = split_head(data)
    if len(head.translate(None, _CONTROL_BYTES)) != len(head):
        # RFC 3261 §25.1 allows no CTL but HTAB in a header: a NUL or an escape sequence in a
        # caller's name would reach the screen, the journal and systemd's STATUS= line. (The
        # request is still answered 400: salvage_error_response copies the lines verbatim.)
        raise SipParseError("control character in the headers")
    start, headers = header_lines(head)
    length = content_length(headers)
    if length is not None:
        if len(body) < length:
            raise SipParseError(f"body shorter than Content-Length ({len(body)} < {length})")
        body = body[:length]
    kept = tuple(h for h in headers if h[0] != "Content-Length")
    message: Request | Response
    if start.startswith("SIP/"):
        message = _parse_response(start, kept, body)
    else:
        message = _parse_request(start, kept, body)
    _check_core_headers(message)
    return message


def _parse_response(start: str, headers: tuple[Header, ...], body: bytes) -> Response:
    version, _, rest = start.partition(" ")
    code, _, reason = rest.partition(" ")
    if version != "SIP/2.0":
        raise SipParseError(f"unsupported version {version!r}")
    status = parse_number(code, "status code", 3)
    if len(code) != 3 or not 100 <= status <= 699:
        raise SipParseError(f"bad status code {code!r}")
    return Response(status=status, reason=reason, headers=headers, body=body)


def _parse_request(start: str, headers: tuple[Header, ...], body: bytes) -> Request:
    parts = start.split(" ")
    if len(parts) != 3:
        raise SipParseError(f"bad request line {start[:80]!r}")
    method, uri_text, version = parts
    if not is_token(method):
        raise SipParseError(f"bad method {method!r}")
    if version != "SIP/2.0":
        if version.startswith("SIP/"):
            raise SipParseError(f"unsupported version {version!r}", error_status_hint=505)
        raise SipParseError(f"bad request line {start[:80]!r}")
    uri = Uri.parse(uri_text)
    return Request(method=method, uri=uri, headers=headers, body=body)


def _check_core_headers(message: Request | Response) -> None:
    for name in ("Call-ID", "CSeq", "From", "To"):
        if message.header(name) is None:
            raise SipParseError(f"missing {name} header")
    for name in PARSED_LISTS:
        if len(message.header_values(name)) > MAX_LIST_ITEMS:
            raise SipParseError(f"more than {MAX_LIST_ITEMS} {name} entries")
    if not message.vias:
        raise SipParseError("missing Via header")
    for name in ("From", "To", "Call-ID"):
        if len(message.header_values(name)) > 1:
            raise SipParseError(f"more than one {name} header")
    call_id = message.call_id
    if not call_id or any(c in call_id for c in " \t"):
        raise SipParseError(f"bad Call-ID {call_id!r}")
    _ = message.from_, message.to, message.contacts, message.record_routes
    cseq = message.cseq
    if isinstance(message, Request):
        if cseq.method != message.method:
            raise SipParseError(f"CSeq method {cseq.method} does not match {message.method}")
        max_forwards = message.int_header("Max-Forwards")
        if max_forwards is not None and max_forwards > 255:
            raise SipParseError(f"Max-Forwards {max_forwards} is over 255")
        if message.uri.headers:
            raise SipParseError("a Request-URI may not carry headers")
        if message.uri.opaque is not None:
            raise SipParseError(
                f"unsupported URI scheme {message.uri.scheme!r}", error_status_hint=416
            )
    for name in ("Expires", "Min-Expires"):  # numbers the agent reads later
        message.int_header(name)


COPIED_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")


def salvage_error_response(data: bytes, status: int, to_tag: str) -> Response | None:
    """Build the answer to a request that failed to parse, if it can be answered at all.

    The Via, From, To, Call-ID and CSeq lines are copied verbatim (§8.2.6.1). Returns None for
    responses, ACKs, and requests missing one of those headers: those are only dropped.
    """
    try:
        head, _ = split_head(data)
        start, headers = header_lines(head)
    except SipParseError:
        return None
    method = start.split(" ", 1)[0]
    if start.startswith("SIP/") or method == Method.ACK or not is_token(method):
        return None
    copied: list[Header] = []
    for name in COPIED_HEADERS:
        found = [(n, v) for n, v in headers if n == name]
        if not found:
            return None
        if name == "To" and "tag=" not in found[0][1]:
            found = [(name, f"{found[0][1]};tag={to_tag}")]
        copied.extend(found)
    return Response(status=status, reason=reason_phrase(status), headers=tuple(copied))
