"""A call's media handle against a real media session: the commands it queues, applied as the
media worker applies them, and what it keeps of the replies (our Hello hash, whether a
re-INVITE names a new ZRTP stream, the counters once the media closed)."""

from __future__ import annotations

from pidphone.app.call_events import CallDtmf, CallInsecure, CallSecurityFailed
from pidphone.app.media import MediaConfig, MediaSession
from pidphone.app.media_events import MediaDtmf, MediaPeerMoved, MediaSecurityFailed
from pidphone.app.media_handle import MediaHandle, call_event_of
from pidphone.app.media_messages import (
    CloseMedia,
    SetCodec,
    SetDirection,
    SetRemote,
    StartMedia,
    apply_to_session,
)
from pidphone.sdp import MediaParams
from pidphone.zrtp.cache import MemoryZidCache


def new_session() -> MediaSession:
    return MediaSession(MediaConfig(), cache=MemoryZidCache())


def params_with(peer_hash: str | None) -> MediaParams:
    return MediaParams(("127.0.0.1", 40002), 0, "PCMU", None, "sendrecv", peer_hash, 20)


def run(handle: MediaHandle, session: MediaSession, now: float = 0.0) -> list[bool]:
    """What the worker does: apply the queued commands; what `on_reply` said of each reply."""
    changed: list[bool] = []
    for command in handle.commands():
        for reply in apply_to_session(session, handle.media_id, command, now):
            changed.append(handle.on_reply(reply))
    return changed


def test_commands_name_the_media_and_keep_their_order() -> None:
    handle = MediaHandle(7, new_session().hello_hash)
    params = params_with(None)
    handle.set_codec(params)
    handle.set_remote(params, None)
    handle.set_direction("sendonly")
    handle.start()
    handle.close()
    assert handle.commands() == [
        SetCodec(7, params),
        SetRemote(7, ("127.0.0.1", 40002), None, None),
        SetDirection(7, "sendonly"),
        StartMedia(7),
        CloseMedia(7),
    ]
    assert handle.commands() == []


def test_the_hello_hash_is_the_sessions_and_a_restart_changes_it() -> None:
    session = new_session()
    handle = MediaHandle(1, session.hello_hash)
    peer_hash = new_session().hello_hash.split()[1]
    handle.set_codec(params_with(peer_hash))
    handle.set_remote(params_with(peer_hash), None)
    handle.start()
    assert run(handle, session) == [False]  # SetRemote's reply: the same stream
    first = handle.hello_hash
    assert first == session.hello_hash

    handle.restart_zrtp()
    assert run(handle, session, 1.0) == [True]
    assert handle.hello_hash == session.hello_hash != first
    assert (handle.hash_requests, handle.hash_replies) == (2, 2)


def test_a_new_zrtp_stream_is_another_hash_once_the_media_started() -> None:
    session = new_session()
    peer_hash = new_session().hello_hash.split()[1]
    other_hash = new_session().hello_hash.split()[1]
    handle = MediaHandle(1, session.hello_hash)
    handle.set_remote(params_with(peer_hash), None)
    assert not handle.is_new_stream(other_hash)  # nothing started: nothing to restart
    handle.start()
    run(handle, session)
    assert not handle.is_new_stream(f"1.10 {peer_hash.upper()} ")  # the same one, spelt apart
    assert not handle.is_new_stream(None) and not handle.is_new_stream("")
    assert handle.is_new_stream(other_hash)
    assert handle.is_new_stream(f"1.10 {other_hash}")


def test_the_counters_are_final_once_the_media_closed() -> None:
    session = new_session()
    handle = MediaHandle(3, session.hello_hash)
    params = params_with(new_session().hello_hash.split()[1])
    handle.set_codec(params)
    handle.set_remote(params, None)
    handle.start()
    run(handle, session)
    while session.datagrams_to_send():  # ZRTP Hello went out
        pass
    assert handle.stats.zrtp_sent == 0  # nothing reported yet
    handle.close()
    assert run(handle, session, 2.0) == [False]
    assert handle.closed
    assert handle.stats == session.stats and handle.stats.zrtp_sent >= 1
    assert handle.stats is not session.stats


def test_media_events_become_the_call_events_that_carry_them() -> None:
    fatal = MediaSecurityFailed("Peer does not support ZRTP", None, True, True)
    not_fatal = MediaSecurityFailed("Peer does not support ZRTP", None, False, True)
    dtmf = MediaDtmf("5")
    assert call_event_of("c1", fatal) == CallSecurityFailed("c1", fatal)
    assert call_event_of("c1", not_fatal) == CallInsecure("c1", not_fatal)
    event = call_event_of("c1", dtmf)
    assert isinstance(event, CallDtmf) and event.dtmf is dtmf
    assert call_event_of("c1", MediaPeerMoved(("127.0.0.1", 4000))) is None
