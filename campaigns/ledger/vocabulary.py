"""The states the ledger records for actions, members and target lists.

Here, not in the definition: a state is a fact of the ledger's life (the outbox's progress,
a member's place in the cascade); the planner and the policy read the same sets.
"""

from __future__ import annotations

from enum import StrEnum


class ActionState(StrEnum):
    """An outbound action's state. Phone actions are call-list entries: queued → done."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED_FINAL = "failed_final"
    DONE = "done"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


# Tuples, not sets: SQL `IN` lists keep one order (one cached statement).
# Still to play (waiting for its turn, its provider or a retry).
OPEN_STATES: tuple[ActionState, ...] = (
    ActionState.QUEUED,
    ActionState.SENDING,
    ActionState.FAILED_RETRYABLE,
)
# Played: accepted by the provider, delivered, or a call with an outcome.
SUCCESS_STATES: tuple[ActionState, ...] = (
    ActionState.SENT,
    ActionState.DELIVERED,
    ActionState.DONE,
)


class MemberStatus(StrEnum):
    """A member's place in a campaign. PENDING: on a list awaiting local validation."""

    PENDING = "pending"
    ACTIVE = "active"
    GOAL = "goal"
    EXITED = "exited"
    COMPLETED = "completed"


class ListState(StrEnum):
    """A target list's state in local validation."""

    PENDING = "pending"
    APPROVED = "approved"
    EXPIRED = "expired"
    REJECTED = "rejected"


# An action's state as the console shows it.
ACTION_STATE_LABELS: dict[str, str] = {
    ActionState.QUEUED: "à faire",
    ActionState.SENDING: "envoi en cours",
    ActionState.SENT: "envoyé",
    ActionState.DELIVERED: "remis",
    ActionState.FAILED_RETRYABLE: "échec, nouvel essai prévu",
    ActionState.FAILED_FINAL: "échec définitif",
    ActionState.DONE: "fait",
    ActionState.SKIPPED: "non fait",
    ActionState.CANCELLED: "annulé",
}
