"""What the day's stages counted, in words on the runs page."""

from __future__ import annotations

import pytest

from campaigns.app.run_labels import count_label, stage_label


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("admitted", "admis"),
        ("actions_written", "actions planifiées"),
        ("queued_call", "mis en file : appel téléphonique"),
        ("deferred_letter", "différés : courrier"),
        ("skipped_mailbox", "passés : message dans le compte ameli"),
        ("left_completed", "sortis : parcours terminé"),
        ("not_admitted_paused", "non admis : campagne suspendue (admis à la reprise)"),
        ("not_admitted_outside_dates", "non admis : hors des dates de la campagne"),
        ("something_new", "something_new"),  # an unknown count keeps its code, never hidden
    ],
)
def test_count_words(key: str, words: str) -> None:
    assert count_label(key) == words


def test_stage_words() -> None:
    assert stage_label("dispatch_letter") == "envoi des courriers"
    assert stage_label("tick") == "planification"
    assert stage_label("later") == "later"


def test_every_count_the_demo_writes_has_words() -> None:
    written = {
        "targeting": ["admitted", "already_member", "eligible", "holdout", "left",
                      "not_admitted_enrolled", "not_admitted_opposed", "pending_validation"],
        "tick": ["actions_written", "batches", "deferred_letter", "deferred_mailbox",
                 "left_completed", "members", "queued_call", "queued_letter", "queued_mailbox",
                 "skipped_call", "skipped_mailbox"],
        "dispatch_mailbox": ["batches", "notices_planned", "sent"],
        "enrolments": ["files", "members_closed", "new", "rows"],
        "mailbox_reads": ["read", "unread"],
    }  # fmt: skip
    for stage, keys in written.items():
        assert stage_label(stage) != stage
        assert all(count_label(k) != k for k in keys), [k for k in keys if count_label(k) == k]
