"""The ZRTP state tables (pidphone.zrtp.state): complete, consistent, and the only way on."""

from __future__ import annotations

import pytest

from pidphone.errors import LocalProtocolError
from pidphone.zrtp import messages
from pidphone.zrtp.session import HANDLERS
from pidphone.zrtp.state import (
    DISPATCH,
    RUNNING,
    TRANSITIONS,
    ZrtpInput,
    ZrtpState,
    ZrtpStep,
    next_state,
)


def test_every_step_has_a_handler_and_is_dispatched() -> None:
    assert set(HANDLERS) == set(ZrtpStep)
    assert set(DISPATCH.values()) == set(ZrtpStep)


def test_only_running_secure_and_failed_streams_read_messages() -> None:
    reading = {state for state, _ in DISPATCH}
    assert reading == {*RUNNING, ZrtpState.SECURE, ZrtpState.FAILED}


def test_after_secure_only_messages_keyed_by_the_session_count() -> None:
    after = {kind for state, kind in DISPATCH if state is ZrtpState.SECURE}
    assert after == {messages.Confirm2, messages.GoClear, messages.SasRelay}
    failed = {kind for state, kind in DISPATCH if state is ZrtpState.FAILED}
    assert failed == {messages.Error, messages.ErrorAck}


def test_answers_to_requests_never_sent_have_no_step() -> None:
    kinds = {kind for _, kind in DISPATCH}
    assert not kinds & {messages.PingAck, messages.ClearAck, messages.RelayAck}


def reachable(start: ZrtpState) -> set[ZrtpState]:
    seen, todo = {start}, [start]
    while todo:
        state = todo.pop()
        for (source, _), target in TRANSITIONS.items():
            if source is state and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_secure_is_reached_as_initiator_and_as_responder() -> None:
    initiator = [
        ZrtpInput.START,
        ZrtpInput.COMMIT,
        ZrtpInput.DHPART1,
        ZrtpInput.CONFIRM1,
        ZrtpInput.CONF2ACK,
    ]
    responder = [ZrtpInput.START, ZrtpInput.DH_COMMIT, ZrtpInput.DHPART2, ZrtpInput.CONFIRM2]
    multistream = [ZrtpInput.START, ZrtpInput.COMMIT, ZrtpInput.CONFIRM1, ZrtpInput.CONF2ACK]
    for path in (initiator, responder, multistream):
        state = ZrtpState.IDLE
        for event in path:
            state = next_state(state, event)
        assert state is ZrtpState.SECURE
    assert reachable(ZrtpState.IDLE) == set(ZrtpState)


def test_failed_and_closed_are_final() -> None:
    assert reachable(ZrtpState.FAILED) == {ZrtpState.FAILED, ZrtpState.CLOSED}
    assert reachable(ZrtpState.CLOSED) == {ZrtpState.CLOSED}


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (ZrtpState.SECURE, ZrtpInput.START),
        (ZrtpState.DHPART1_SENT, ZrtpInput.CONFIRM1),
        (ZrtpState.FAILED, ZrtpInput.FAILURE),
        (ZrtpState.CLOSED, ZrtpInput.COMMIT),
    ],
)
def test_an_input_the_table_does_not_allow_is_our_own_error(
    state: ZrtpState, event: ZrtpInput
) -> None:
    with pytest.raises(LocalProtocolError, match=state.value):
        next_state(state, event)
