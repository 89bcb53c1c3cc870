"""The account's SIP events as the facts the phone shows: the registration state (a failed
link counts only when it is the registrar's), and the voicemail indicator (cleared only when
the agent gives the subscription up)."""

from __future__ import annotations

from pidphone.app.account_events import account_facts
from pidphone.app.phone_events import RegistrationChanged, VoicemailChanged
from pidphone.app.signalling import LinkFailed
from pidphone.ports import Address
from pidphone.sip import events as sip

REGISTRAR: Address = ("192.0.2.10", 5061)


def test_registration_outcomes() -> None:
    assert account_facts(sip.Registered(600, ()), REGISTRAR) == [RegistrationChanged("registered")]
    refused = sip.RegistrationFailed(403, "Forbidden", None)
    assert account_facts(refused, REGISTRAR) == [RegistrationChanged("failed", "403 Forbidden")]
    no_answer = sip.RegistrationFailed(None, "timeout", 30.0)
    assert account_facts(no_answer, REGISTRAR) == [RegistrationChanged("failed", "timeout")]


def test_a_failed_link_is_the_registrations_state_only_for_the_registrar() -> None:
    unreachable = LinkFailed(REGISTRAR, "unreachable", "connection refused")
    assert account_facts(unreachable, REGISTRAR) == [
        RegistrationChanged("no_network", "unreachable"),
        unreachable,
    ]
    untrusted = LinkFailed(REGISTRAR, "untrusted", "certificate verify failed")
    assert account_facts(untrusted, REGISTRAR) == [
        RegistrationChanged("tls_error", "untrusted"),
        untrusted,
    ]
    refused = LinkFailed(REGISTRAR, "refused", "connection refused")
    assert account_facts(refused, REGISTRAR) == [  # the host is up: not "No network"
        RegistrationChanged("failed", "connection refused"),
        refused,
    ]
    elsewhere = LinkFailed(("192.0.2.20", 5061), "untrusted", "certificate verify failed")
    assert account_facts(elsewhere, REGISTRAR) == [elsewhere]
    assert account_facts(untrusted, None) == [untrusted]  # no registrar configured


def test_the_voicemail_indicator_clears_only_when_given_up() -> None:
    status = sip.VoicemailStatus(True, 2, 1)
    assert account_facts(status, REGISTRAR) == [VoicemailChanged(status)]
    retrying = sip.VoicemailUnavailable(None, "timeout", 120.0)
    assert account_facts(retrying, REGISTRAR) == []  # the agent subscribes again
    given_up = sip.VoicemailUnavailable(489, "Bad Event", None)
    assert account_facts(given_up, REGISTRAR) == [VoicemailChanged(None)]


def test_a_call_event_is_no_account_fact() -> None:
    assert account_facts(sip.CallProgress("c1", 180, "Ringing", None), REGISTRAR) == []
