"""One call's handle on its media session, which lives on the media worker's thread.

The call decides what its media must do (pidphone.app.call: dialog, offer/answer, policy);
the handle turns that into the worker's commands, named by the call's `media_id` and queued
in order for the switchboard to send, and keeps what the worker last said: our ZRTP Hello
hash, the counters, whether the media closed. It also remembers the peer's a=zrtp-hash it
gave the media, because a re-INVITE with another one means the peer started a new ZRTP
stream, and counts the Hello hash requests and replies, because an answer that must carry our
new Hello hash waits for the reply. `call_event_of` says what a media event means to the call.
"""

from __future__ import annotations

from pidphone.ports import Address
from pidphone.sdp import MediaParams

from .call_events import (
    CallDtmf,
    CallEvent,
    CallInsecure,
    CallMismatch,
    CallSecure,
    CallSecurityFailed,
    CallSecurityLost,
)
from .call_sdp import zrtp_hash_hex
from .media_events import (
    MediaDtmf,
    MediaEvent,
    MediaSecretMismatch,
    MediaSecured,
    MediaSecurityFailed,
    MediaSecurityLost,
    MediaStats,
)
from .media_messages import (
    AllowClear,
    CloseMedia,
    MediaClosed,
    MediaCommand,
    MediaHelloHash,
    MediaId,
    MediaStatsReport,
    RestartZrtp,
    SendDigit,
    SetCodec,
    SetDirection,
    SetRemote,
    SetSasVerified,
    StartMedia,
    WorkerEvent,
)


class MediaHandle:
    """The commands for one call's media (`commands()` drains them) and its last reports."""

    def __init__(self, media_id: MediaId, hello_hash: str) -> None:
        self.media_id = media_id
        self.hello_hash = hello_hash
        """Our ZRTP Hello hash ("1.10 <hex>"), as the media session last said."""
        self.stats = MediaStats()
        """The media's counters as last reported (final once `closed`)."""
        self.closed = False
        self.started = False
        self.hash_requests = 0
        self.hash_replies = 0
        """`SetRemote`/`RestartZrtp` sent, and `MediaHelloHash` replies received."""
        self._peer_hash: str | None = None
        """The peer's a=zrtp-hash digest last given to the media."""
        self._commands: list[MediaCommand] = []

    # ------------------------------------------------------------------ commands

    def set_codec(self, params: MediaParams) -> None:
        self._commands.append(SetCodec(self.media_id, params))

    def set_remote(self, params: MediaParams, rtcp: Address | None) -> None:
        """The peer's address and a=zrtp-hash; the media answers with our Hello hash."""
        peer_hash = params.remote_zrtp_hash
        if peer_hash:
            self._peer_hash = _digest(peer_hash)
        self._ask_hash(SetRemote(self.media_id, params.remote_address, peer_hash, rtcp))

    def set_direction(self, direction: str) -> None:
        self._commands.append(SetDirection(self.media_id, direction))

    def start(self) -> None:
        self._commands.append(StartMedia(self.media_id))
        self.started = True

    def send_digit(self, key: str) -> None:
        self._commands.append(SendDigit(self.media_id, key))

    def set_sas_verified(self, verified: bool) -> None:
        self._commands.append(SetSasVerified(self.media_id, verified))

    def restart_zrtp(self) -> None:
        """A new ZRTP stream; the media answers with its new Hello hash."""
        self._ask_hash(RestartZrtp(self.media_id))

    def allow_clear(self) -> None:
        self._commands.append(AllowClear(self.media_id))

    def close(self) -> None:
        self._commands.append(CloseMedia(self.media_id))

    def commands(self) -> list[MediaCommand]:
        """What the media worker must do, in order (then cleared)."""
        commands, self._commands = self._commands, []
        return commands

    # ------------------------------------------------------------------ what the media said

    def is_new_stream(self, peer_hash: str | None) -> bool:
        """Whether a re-INVITE's a=zrtp-hash names another ZRTP stream than the started
        media's (the peer restarted its ZRTP)."""
        return (
            bool(peer_hash)
            and self.started
            and self._peer_hash is not None
            and _digest(peer_hash or "") != self._peer_hash
        )

    def on_reply(self, event: WorkerEvent) -> bool:
        """Keep a reply of the worker (Hello hash, counters, closed); True when it changed
        our Hello hash."""
        if isinstance(event, MediaHelloHash):
            self.hash_replies += 1
            changed = event.hello_hash != self.hello_hash
            self.hello_hash = event.hello_hash
            return changed
        if isinstance(event, MediaStatsReport | MediaClosed):
            self.stats = event.stats
            self.closed = self.closed or isinstance(event, MediaClosed)
        return False

    def _ask_hash(self, command: SetRemote | RestartZrtp) -> None:
        self.hash_requests += 1
        self._commands.append(command)


def call_event_of(call_id: str, event: MediaEvent) -> CallEvent | None:
    """The call event that carries a media event (None: nothing for the screen, e.g. the
    peer's address moved under symmetric RTP)."""
    if isinstance(event, MediaSecured):
        return CallSecure(call_id, event.secured)
    if isinstance(event, MediaSecretMismatch):
        return CallMismatch(call_id)
    if isinstance(event, MediaSecurityFailed):
        return CallSecurityFailed(call_id, event) if event.fatal else CallInsecure(call_id, event)
    if isinstance(event, MediaSecurityLost):
        return CallSecurityLost(call_id, event)
    if isinstance(event, MediaDtmf):
        return CallDtmf(call_id, event)
    return None


def _digest(zrtp_hash: str) -> str:
    """An a=zrtp-hash value as compared: its hex digest, lower case."""
    return zrtp_hash_hex(zrtp_hash.strip()).lower()
