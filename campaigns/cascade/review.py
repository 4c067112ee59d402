"""Local validation before launch: échelons review their lists, a campaign manager approves.

Until its first list is approved, a campaign admits people as `pending`: they are in the
ledger, nobody contacts them. Échelon staff exclude people (a reason from a fixed list,
reversible until launch) and mark their échelon validated; a campaign manager approves
(every échelon must have validated) or rejects; a list not approved by its deadline expires
and is not launched. Every step records who and when.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns.clock import paris_today, utcnow
from campaigns.definition.model import CampaignDefinition
from campaigns.definition.reasons import EXCLUSION_REASONS as EXCLUSION_REASONS  # re-exported
from campaigns.ledger.members import close_member
from campaigns.ledger.models import (
    ACTIVE,
    EXITED,
    LIST_APPROVED,
    LIST_EXPIRED,
    LIST_PENDING,
    LIST_REJECTED,
    PENDING,
    Campaign,
    EchelonSignoff,
    Exclusion,
    Member,
    MemberEvent,
    TargetList,
)


class ValidationError(ValueError):
    """A validation step that cannot be taken, and why (shown to the user as is)."""


@dataclass
class ListStatus:
    """Where a list stands, per échelon."""

    target_list: TargetList
    per_echelon: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def missing_signoffs(self) -> list[str]:
        """Échelons with people on the list that have not validated it."""
        return sorted(e for e, v in self.per_echelon.items() if not v["signed_by"])


def is_launched(*, session: Session, campaign_id: str) -> bool:
    """Whether contacts may start (no validation needed, or a list was approved)."""
    row = session.get(Campaign, campaign_id)
    return row is not None and row.launched_at is not None


def open_list(*, session: Session, definition: CampaignDefinition, today: date) -> TargetList:
    """The campaign's pending list, created with its deadline if there is none."""
    current = session.exec(
        select(TargetList).where(
            TargetList.campaign_id == definition.id, TargetList.state == LIST_PENDING
        )
    ).first()
    if current is not None:
        return current
    lst = TargetList(
        campaign_id=definition.id,
        created_on=today,
        deadline=today + timedelta(days=definition.validation.delay_days),
    )
    session.add(lst)
    session.flush()
    return lst


def pending_list(*, session: Session, campaign_id: str) -> TargetList | None:
    """The list awaiting validation, if any."""
    return session.exec(
        select(TargetList).where(
            TargetList.campaign_id == campaign_id, TargetList.state == LIST_PENDING
        )
    ).first()


def list_status(*, session: Session, target_list: TargetList) -> ListStatus:
    """People listed, excluded and who validated, per échelon."""
    out = ListStatus(target_list)
    listed = session.exec(
        select(Member.echelon, func.count())
        .where(Member.campaign_id == target_list.campaign_id, Member.status == PENDING)
        .group_by(col(Member.echelon))
    ).all()
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"listed": 0, "excluded": 0, "signed_by": None, "signed_at": None}
    )
    for echelon, n in listed:
        per[echelon]["listed"] = int(n)
    for echelon, n in session.exec(
        select(Exclusion.echelon, func.count())
        .where(Exclusion.list_id == target_list.id, col(Exclusion.revoked_at).is_(None))
        .group_by(col(Exclusion.echelon))
    ).all():
        per[echelon]["excluded"] = int(n)
    for s in session.exec(select(EchelonSignoff).where(EchelonSignoff.list_id == target_list.id)):
        per[s.echelon]["signed_by"], per[s.echelon]["signed_at"] = s.signed_by, s.signed_at
    out.per_echelon = dict(sorted(per.items()))
    return out


def _pending_member(session: Session, target_list: TargetList, member_id: int) -> Member:
    if target_list.state != LIST_PENDING:
        raise ValidationError(f"the list is {target_list.state}: it can no longer change")
    m = session.get(Member, member_id)
    if m is None or m.campaign_id != target_list.campaign_id or m.status != PENDING:
        raise ValidationError(f"member {member_id} is not on this list")
    return m


def _check_scope(echelon: str, scope: str | None) -> None:
    if scope is not None and echelon != scope:
        raise PermissionError(f"échelon {scope} cannot act on échelon {echelon}'s list")


def check_signer(*, role: str, own_echelon: str | None, echelon: str, reason: str = "") -> None:
    """Only the échelon's own lead signs off (or reopens) its list; an administrator may, with
    a reason that is recorded; nobody else (a campaign manager approves, not validates)."""
    if role == "echelon_lead" and own_echelon == echelon:
        return
    if role == "admin":
        if not reason.strip():
            raise ValidationError(
                f"un administrateur qui valide ou rouvre l'échelon {echelon} "
                "doit en donner le motif"
            )
        return
    raise PermissionError(
        f"seul le responsable de l'échelon {echelon} (ou un administrateur, motif à l'appui) "
        "peut valider ou rouvrir sa liste"
    )


def signed_off(*, session: Session, target_list: TargetList, echelon: str) -> EchelonSignoff | None:
    """The échelon's sign-off of this list, if it has one."""
    return session.exec(
        select(EchelonSignoff).where(
            EchelonSignoff.list_id == target_list.id, EchelonSignoff.echelon == echelon
        )
    ).first()


def _check_not_frozen(session: Session, target_list: TargetList, echelon: str) -> None:
    """A signed-off échelon's list no longer changes until the échelon is reopened."""
    if signed_off(session=session, target_list=target_list, echelon=echelon) is not None:
        raise ValidationError(
            f"la liste de l'échelon {echelon} est validée : rouvrez-la avant de la modifier"
        )


def reopen(*, session: Session, target_list: TargetList, echelon: str) -> EchelonSignoff | None:
    """Withdraw the échelon's sign-off (its list can change again); the one withdrawn, or None."""
    if target_list.state != LIST_PENDING:
        raise ValidationError(f"the list is {target_list.state}: it can no longer change")
    row = signed_off(session=session, target_list=target_list, echelon=echelon)
    if row is not None:
        session.delete(row)
        session.flush()
    return row


def exclude(
    *,
    session: Session,
    target_list: TargetList,
    member_id: int,
    reason: str,
    by: str,
    note: str | None = None,
    scope: str | None = None,
    now: datetime | None = None,
) -> Exclusion:
    """Take a person off the list (reason from the fixed list; `other` needs a note)."""
    now = now or utcnow()
    if reason not in EXCLUSION_REASONS:
        raise ValidationError(f"unknown reason {reason!r}: one of {', '.join(EXCLUSION_REASONS)}")
    if reason == "other" and not (note and note.strip()):
        raise ValidationError("the reason 'other' needs a note saying why")
    m = _pending_member(session, target_list, member_id)
    _check_scope(m.echelon, scope)
    _check_not_frozen(session, target_list, m.echelon)
    active = session.exec(
        select(Exclusion).where(
            Exclusion.list_id == target_list.id,
            Exclusion.member_id == member_id,
            col(Exclusion.revoked_at).is_(None),
        )
    ).first()
    if active is not None:
        return active
    row = Exclusion(
        list_id=target_list.id or 0,
        member_id=member_id,
        echelon=m.echelon,
        reason=reason,
        note=note,
        excluded_by=by,
        excluded_at=now,
    )
    session.add(row)
    session.add(
        MemberEvent(
            member_id=member_id,
            on=paris_today(now),
            kind="excluded",
            detail={"reason": reason, "note": note, "by": by},
        )
    )
    session.flush()
    return row


def revoke_exclusion(
    *,
    session: Session,
    target_list: TargetList,
    member_id: int,
    by: str,
    scope: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Put an excluded person back on the list (until launch)."""
    now = now or utcnow()
    m = _pending_member(session, target_list, member_id)
    _check_scope(m.echelon, scope)
    _check_not_frozen(session, target_list, m.echelon)
    row = session.exec(
        select(Exclusion).where(
            Exclusion.list_id == target_list.id,
            Exclusion.member_id == member_id,
            col(Exclusion.revoked_at).is_(None),
        )
    ).first()
    if row is None:
        return False
    row.revoked_by, row.revoked_at = by, now
    session.add(
        MemberEvent(
            member_id=member_id, on=paris_today(now), kind="exclusion_revoked", detail={"by": by}
        )
    )
    return True


def sign_off(
    *,
    session: Session,
    target_list: TargetList,
    echelon: str,
    by: str,
    scope: str | None = None,
    now: datetime | None = None,
) -> EchelonSignoff:
    """Mark an échelon's part of the list as reviewed."""
    now = now or utcnow()
    _check_scope(echelon, scope)
    if target_list.state != LIST_PENDING:
        raise ValidationError(f"the list is {target_list.state}: it can no longer change")
    row = session.exec(
        select(EchelonSignoff).where(
            EchelonSignoff.list_id == target_list.id, EchelonSignoff.echelon == echelon
        )
    ).first()
    if row is None:
        row = EchelonSignoff(
            list_id=target_list.id or 0, echelon=echelon, signed_by=by, signed_at=now
        )
        session.add(row)
        session.flush()
    return row


def approve(
    *,
    session: Session,
    target_list: TargetList,
    by: str,
    today: date,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Launch the list: excluded people leave, everyone else enters the cascade."""
    now = now or utcnow()
    if target_list.state == LIST_APPROVED:
        return target_list.counts
    if target_list.state != LIST_PENDING:
        raise ValidationError(f"the list is {target_list.state} ({target_list.reason})")
    status = list_status(session=session, target_list=target_list)
    if status.missing_signoffs:
        raise ValidationError(
            "chaque échelon doit avoir validé sa liste ; manque : "
            + ", ".join(status.missing_signoffs)
        )
    excluded = {
        e.member_id: e
        for e in session.exec(
            select(Exclusion).where(
                Exclusion.list_id == target_list.id, col(Exclusion.revoked_at).is_(None)
            )
        )
    }
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"launched": 0, "excluded": 0})
    for m in session.exec(
        select(Member).where(
            Member.campaign_id == target_list.campaign_id, Member.status == PENDING
        )
    ):
        if m.id in excluded:
            close_member(
                session=session,
                member=m,
                status=EXITED,
                reason=f"excluded_{excluded[m.id].reason}",
                today=today,
                source=f"validation by {excluded[m.id].excluded_by}",
                now=now,
            )
            counts[m.echelon]["excluded"] += 1
        else:
            m.status = ACTIVE
            session.add(
                MemberEvent(member_id=m.id or 0, on=today, kind="launched", detail={"by": by})
            )
            counts[m.echelon]["launched"] += 1
    target_list.state, target_list.decided_by, target_list.decided_at = LIST_APPROVED, by, now
    target_list.counts = {k: dict(v) for k, v in sorted(counts.items())}
    campaign = session.get(Campaign, target_list.campaign_id)
    if campaign is not None and campaign.launched_at is None:
        campaign.launched_at = now
    return target_list.counts


def _close_list(
    session: Session,
    target_list: TargetList,
    state: str,
    reason: str,
    by: str,
    today: date,
    now: datetime,
) -> None:
    for m in session.exec(
        select(Member).where(
            Member.campaign_id == target_list.campaign_id, Member.status == PENDING
        )
    ):
        close_member(
            session=session,
            member=m,
            status=EXITED,
            reason=f"list_{state}",
            today=today,
            source=by,
            now=now,
        )
    target_list.state, target_list.reason = state, reason
    target_list.decided_by, target_list.decided_at = by, now


def reject(
    *,
    session: Session,
    target_list: TargetList,
    by: str,
    reason: str,
    today: date,
    now: datetime | None = None,
) -> None:
    """Refuse the list: nobody on it is contacted."""
    if target_list.state != LIST_PENDING:
        raise ValidationError(f"the list is {target_list.state}: it can no longer change")
    _close_list(session, target_list, LIST_REJECTED, reason, by, today, now or utcnow())


def expire_overdue(
    *, session: Session, campaign_id: str, today: date, now: datetime | None = None
) -> TargetList | None:
    """A pending list past its deadline is not launched; say why."""
    lst = pending_list(session=session, campaign_id=campaign_id)
    if lst is None or today <= lst.deadline:
        return None
    status = list_status(session=session, target_list=lst)
    why = f"not approved by its deadline {lst.deadline.isoformat()}"
    if status.missing_signoffs:
        why += "; échelons that had not validated: " + ", ".join(status.missing_signoffs)
    _close_list(session, lst, LIST_EXPIRED, why, "deadline", today, now or utcnow())
    return lst
