"""What a config's choices mean together, for `pidphone check-config`: today the post-quantum
key agreements, whose use depends on the other phone's list as much as on ours."""

from __future__ import annotations

from pidphone.zrtp.algorithms import POST_QUANTUM

from .schema import Config


def zrtp_notes(config: Config) -> list[str]:
    """Lines that say which key agreement a call will use, and when it is post-quantum.

    The rule is bzrtp's (Linphone 5.5), which pidphone follows: each phone takes its first
    choice among what both offer; when the two differ, the numerically lower code wins, and
    the post-quantum codes are the highest. So one is used only when both phones put it first.
    """
    listed = config.security.key_agreement
    quantum = [name for name in listed if name in POST_QUANTUM]
    if not quantum:
        return [
            "security.key_agreement has no post-quantum key agreement: whoever records a call "
            "today can decrypt it once a quantum computer breaks X25519, X448 or DH. Put "
            '"X3M3" first (then "X255") to protect calls with phones that have it.'
        ]
    first = listed[0]
    fallback = next((name for name in listed if name not in POST_QUANTUM), None)
    notes: list[str] = []
    if first in POST_QUANTUM:
        notes.append(
            f"security.key_agreement: {first} first. A call is post-quantum when the other "
            f"phone lists {first} first too (pidphone, Linphone 5.5 with post-quantum on); "
            "when the first choices differ the lower code wins, and post-quantum codes are "
            "the highest, so the call then uses the other phone's choice."
        )
        notes.append(
            f"security.key_agreement: with {first}, AES3 and S512 are offered too and chosen "
            "when both phones offer them (as Linphone does)."
        )
    else:
        notes.append(
            f"security.key_agreement: {', '.join(quantum)} listed after {first}: never used "
            f"with a phone that offers {first} (the first choice wins). Put it first to use it."
        )
    if fallback is not None:
        notes.append(
            f"security.key_agreement: to a phone without {quantum[0]}, {fallback} is offered "
            "next (the lower code of the two phones' first common choices is used)."
        )
    else:
        notes.append(
            "security.key_agreement lists only post-quantum key agreements: a phone without "
            "them gets DH3k, the one every ZRTP phone must have (slow on a Pi). Add X255."
        )
    return notes
