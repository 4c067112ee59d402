"""Validation of a list before launch, as use cases: the console, the CLI and the flow call these.

Each function finds the campaign's pending list, applies one step through `campaigns.cascade.review`
and records it in the audit log under the name of the person who took it, so a decision is
audited the same way whichever door it came through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlmodel import Session, col, select

from campaigns.cascade import review as rules
from campaigns.cascade.review import ValidationError
from campaigns.ledger.audit import record
from campaigns.ledger.models import (
    PENDING,
    EchelonSignoff,
    Exclusion,
    Member,
    Person,
    TargetList,
    User,
)

Decision = Literal["approve", "reject"]


class NoPendingList(ValidationError):
    """No list of this campaign awaits validation (or not the one expected)."""


@dataclass(frozen=True)
class Decided:
    """What a decision did to the list."""

    list_id: int
    decision: Decision
    counts: dict[str, Any]
    flow_run_id: str | None

    def as_input(self, *, actor: str, reason: str = "") -> dict[str, Any]:
        """The decision as the waiting flow run's input (`flows.validation.Approval`)."""
        return {"approved": self.decision == "approve", "approver": actor, "reason": reason}


def pending(*, session: Session, campaign_id: str, list_id: int | None = None) -> TargetList:
    """The campaign's pending list; `list_id` insists on that very list."""
    lst = rules.pending_list(session=session, campaign_id=campaign_id)
    if lst is None:
        raise NoPendingList(f"{campaign_id} : aucune liste en attente de validation")
    if list_id is not None and lst.id != list_id:
        raise NoPendingList(f"{campaign_id} : la liste {list_id} n'est plus en attente")
    return lst


def echelon_people(
    *, session: Session, actor: str, campaign_id: str, echelon: str
) -> list[tuple[Member, Person, Exclusion | None]]:
    """One échelon's people on the pending list, with their exclusion; the viewing is audited."""
    lst = pending(session=session, campaign_id=campaign_id)
    excluded = {
        e.member_id: e
        for e in session.exec(
            select(Exclusion).where(
                Exclusion.list_id == lst.id, col(Exclusion.revoked_at).is_(None)
            )
        )
    }
    people = [
        (m, p, excluded.get(m.id or 0))
        for m, p in session.exec(
            select(Member, Person)
            .join(Person, col(Person.id) == col(Member.person_id))
            .where(
                Member.campaign_id == campaign_id,
                Member.status == PENDING,
                Member.echelon == echelon,
            )
            .order_by(col(Member.anchor_date), col(Member.id))
        )
    ]
    record(
        session=session,
        actor=actor,
        action="view_list",
        target=f"{campaign_id}/list/{lst.id}/{echelon}",
        detail={"people": len(people)},
    )
    return people


def exclude_member(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    member_id: int,
    reason: str,
    note: str | None = None,
    scope: str | None = None,
    now: datetime | None = None,
) -> Exclusion:
    """Take a person off the pending list, with a reason."""
    row = rules.exclude(
        session=session,
        target_list=pending(session=session, campaign_id=campaign_id),
        member_id=member_id,
        reason=reason,
        note=note,
        by=actor,
        scope=scope,
        now=now,
    )
    record(
        session=session,
        actor=actor,
        action="exclude",
        target=f"{campaign_id}/member/{member_id}",
        detail={"reason": reason},
        now=now,
    )
    return row


def revoke_exclusion(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    member_id: int,
    scope: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Put an excluded person back on the list; False (and nothing audited) if not excluded."""
    done = rules.revoke_exclusion(
        session=session,
        target_list=pending(session=session, campaign_id=campaign_id),
        member_id=member_id,
        by=actor,
        scope=scope,
        now=now,
    )
    if done:
        record(
            session=session,
            actor=actor,
            action="revoke_exclusion",
            target=f"{campaign_id}/member/{member_id}",
            now=now,
        )
    return done


def _signer(
    session: Session, actor: str, role: str | None, own_echelon: str | None
) -> tuple[str, str | None]:
    """Who signs: the console's user as given, else (the command line, where anyone may type
    any name) the active account `actor` names: nobody signs for an échelon without one."""
    if role is not None:
        return role, own_echelon
    user = session.exec(select(User).where(User.username == actor)).first()
    if user is None or not user.active:
        raise PermissionError(
            f"« {actor} » n'est pas un compte actif de la console : seul le responsable de "
            "l'échelon (ou un administrateur, motif à l'appui) valide ou rouvre sa liste"
        )
    return user.role, user.echelon


def sign_off_echelon(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    echelon: str,
    scope: str | None = None,
    now: datetime | None = None,
    role: str | None = None,
    own_echelon: str | None = None,
    reason: str = "",
) -> EchelonSignoff:
    """Mark an échelon's part of the pending list as reviewed: by that échelon's own lead, or an
    administrator giving a reason (`role` None: the command line, the role of `actor`'s
    account)."""
    role, own_echelon = _signer(session, actor, role, own_echelon)
    rules.check_signer(role=role, own_echelon=own_echelon, echelon=echelon, reason=reason)
    lst = pending(session=session, campaign_id=campaign_id)
    row = rules.sign_off(
        session=session, target_list=lst, echelon=echelon, by=actor, scope=scope, now=now
    )
    detail: dict[str, Any] = {"signed_by": row.signed_by}
    if role is not None:
        detail["role"] = role
    if reason.strip():
        detail["reason"] = reason.strip()
    record(
        session=session,
        actor=actor,
        action="sign_off",
        target=f"{campaign_id}/list/{lst.id}/{echelon}",
        detail=detail,
        now=now,
    )
    return row


def reopen_echelon(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    echelon: str,
    role: str | None = None,
    own_echelon: str | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> bool:
    """Withdraw an échelon's sign-off so its list can change again (same people as sign it off);
    False (and nothing audited) if it was not signed off."""
    role, own_echelon = _signer(session, actor, role, own_echelon)
    rules.check_signer(role=role, own_echelon=own_echelon, echelon=echelon, reason=reason)
    lst = pending(session=session, campaign_id=campaign_id)
    row = rules.reopen(session=session, target_list=lst, echelon=echelon)
    if row is None:
        return False
    record(
        session=session,
        actor=actor,
        action="reopen_echelon",
        target=f"{campaign_id}/list/{lst.id}/{echelon}",
        detail={"was_signed_by": row.signed_by, "reason": reason.strip(), "role": role},
        now=now,
    )
    return True


def decide_list(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    decision: str,
    today: date,
    reason: str = "",
    list_id: int | None = None,
    via: str = "console",
    now: datetime | None = None,
) -> Decided:
    """Approve (every échelon signed off) or reject (with a reason) the pending list."""
    if decision not in ("approve", "reject"):
        raise ValidationError(f"décision inconnue {decision!r} : approve ou reject")
    if not actor.strip():
        raise ValidationError("une décision doit nommer qui la prend")
    chosen: Decision = "approve" if decision == "approve" else "reject"
    lst = pending(session=session, campaign_id=campaign_id, list_id=list_id)
    if chosen == "approve":
        counts = rules.approve(session=session, target_list=lst, by=actor, today=today, now=now)
    else:
        if not reason.strip():
            raise ValidationError("un refus doit être motivé")
        rules.reject(
            session=session, target_list=lst, by=actor, reason=reason, today=today, now=now
        )
        counts = {}
    record(
        session=session,
        actor=actor,
        action=f"list_{decision}",
        target=f"{campaign_id}/list/{lst.id}",
        detail={"counts": counts, "reason": reason, "via": via},
        now=now,
    )
    return Decided(list_id=lst.id or 0, decision=chosen, counts=counts, flow_run_id=lst.flow_run_id)
