"""The words for what a day's stages counted, as the runs page and `relance campaigns runs`
show them (the ledger keeps the codes)."""

from __future__ import annotations

from campaigns.definition.reasons import explain
from campaigns.definition.rendering import CHANNEL_LABELS

STAGES = {
    "preflight": "vérifications",
    "enrolments": "adhésions",
    "goals": "objectifs constatés",
    "targeting": "ciblage",
    "validation": "validation de la liste",
    "tick": "planification",
    "tick_part": "planification (partition)",
    "dispatch": "envoi",
    "dispatch_mailbox": "envoi des messages ameli",
    "dispatch_email": "envoi des courriels",
    "dispatch_letter": "envoi des courriers",
    "mailbox_reads": "lectures des messages ameli",
    "report": "rapport",
}

COUNTS = {
    "admitted": "admis",
    "already_member": "déjà membres",
    "eligible": "éligibles",
    "holdout": "groupe témoin",
    "left": "sortis",
    "pending_validation": "en attente de validation",
    "actions_written": "actions planifiées",
    "batches": "lots",
    "members": "membres examinés",
    "quiet": "membres sans action due",
    "partitions": "partitions",
    "notices_planned": "avis planifiés",
    "sent": "envoyés",
    "failed": "en échec",
    "retry": "à renvoyer",
    "files": "fichiers",
    "members_closed": "membres sortis",
    "new": "nouvelles adhésions",
    "rows": "lignes",
    "read": "lus",
    "unread": "non lus",
    "paused": "campagne suspendue",
    "ended": "campagne terminée",
    "observed": "constatés",
}
_PREFIXES = {
    "queued": "mis en file",
    "deferred": "différés",
    "skipped": "passés",
    "cancelled": "annulés",
}
_CHANNELS = {**CHANNEL_LABELS, "call": CHANNEL_LABELS["phone"]}
_NOT_ADMITTED = {
    "enrolled": "déjà inscrits au programme",
    "opposed": "opposés à tout contact",
    "outside_dates": "hors des dates de la campagne",
    "paused": "campagne suspendue (admis à la reprise)",
}
_STATUSES = {"completed": "parcours terminé", "goal": "objectif atteint", "exited": "sortis"}


def stage_label(stage: str) -> str:
    """A stage's name in words (its code when none is known)."""
    return STAGES.get(stage, stage)


def count_label(key: str) -> str:
    """What a stage count means, in words: `queued_letter` → « mis en file : courrier »."""
    if key in COUNTS:
        return COUNTS[key]
    head, _, rest = key.partition("_")
    if head in _PREFIXES and rest:
        return f"{_PREFIXES[head]} : {_CHANNELS.get(rest, rest)}"
    if head == "left" and rest:
        return f"sortis : {_STATUSES.get(rest, explain(rest))}"
    if key.startswith("not_admitted_"):
        why = key.removeprefix("not_admitted_")
        return f"non admis : {_NOT_ADMITTED.get(why) or explain(why)}"
    return key
