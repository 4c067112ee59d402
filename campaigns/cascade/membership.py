"""Who is in a campaign: admitting targeted people, letting go of those whose situation changed."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, tuple_
from sqlmodel import Session, col, select

from campaigns.cascade.holdout import in_holdout
from campaigns.cascade.review import expire_overdue, is_launched, open_list
from campaigns.clock import utcnow
from campaigns.definition.model import CampaignDefinition
from campaigns.definition.reasons import Reason
from campaigns.ledger.goals import goal_reached
from campaigns.ledger.members import close_member
from campaigns.ledger.models import (
    ACTIVE,
    EXITED,
    GOAL,
    PENDING,
    Enrolment,
    Member,
    MemberEvent,
    Opposition,
    Person,
)

log = logging.getLogger(__name__)

# Targeting reasons that end a member's cascade, with the status they lead to.
_EXIT_REASONS = {
    "deceased": (EXITED, Reason.DECEASED),
    "already_enrolled": (GOAL, Reason.ENROLLED),
    "opposed": (EXITED, Reason.OPPOSED),
}


def _s(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v == "":
        return None
    return str(v)


def _mask(frame: pd.DataFrame, keep: Callable[[tuple[str, int]], bool]) -> np.ndarray:
    """A boolean row mask over the frame's person keys (an empty frame keeps its columns)."""
    return np.array(
        [
            keep((p, int(r)))
            for p, r in zip(frame["ben_nir_psa"], frame["ben_rng_gem"], strict=True)
        ],
        dtype=bool,
    )


def _day(v: Any) -> date | None:
    """A date from whatever pandas holds (date, Timestamp, ISO string, NA)."""
    if _s(v) is None or pd.isna(v):
        return None
    return pd.Timestamp(v).date()


def last_birthday(birth: date, today: date) -> date:
    """The most recent birthday on or before today (birth is the 1st of the birth month)."""
    this_year = birth.replace(year=today.year)
    return this_year if this_year <= today else birth.replace(year=today.year - 1)


def anchor_date(definition: CampaignDefinition, row: Any, today: date) -> date:
    """A newcomer's anchor date, by the campaign's anchor kind.

    ald_renewal: the ALD renewal date; wave: the launch, or today for a later entry;
    entry: today; birthday: the most recent birthday (from the targeting's `birth_date`).
    """
    kind = definition.anchor.kind
    if kind == "ald_renewal":
        return _day(getattr(row, "ald_end_date", None)) or today
    if kind == "wave":
        return max(definition.dates.start, today)
    if kind == "birthday":
        birth = _day(getattr(row, "birth_date", None))
        return last_birthday(birth, today) if birth else today
    return today


def within_dates(definition: CampaignDefinition, today: date) -> bool:
    """Whether the campaign admits people today (between its start and its end)."""
    dates = definition.dates
    return dates.start <= today and (dates.end is None or today <= dates.end)


def _person_values(row: Any, now: datetime) -> dict[str, Any]:
    lines = [x for x in (_s(getattr(row, f"adresse_l{i}")) for i in range(1, 7)) if x]
    year = _s(row.ben_nai_ann)
    month = _s(row.ben_nai_moi)
    return {
        "ben_nir_psa": row.ben_nir_psa,
        "ben_rng_gem": int(row.ben_rng_gem),
        "nir": row.nir,
        "civilite": row.civilite,
        "nom": row.nom,
        "prenom": row.prenom,
        "address_lines": lines,
        "telephone": _s(row.telephone),
        "email": _s(row.email),
        "compte_ameli": bool(row.compte_ameli),
        "echelon": row.echelon,
        "departement": row.ben_res_dpt,
        "sex": int(row.ben_sex_cod),
        "birth_year": int(year) if year and year != "1600" else None,
        "birth_month": int(month) if month else None,
        "updated_at": now,
    }


def upsert_people(
    *, session: Session, people: pd.DataFrame, now: datetime
) -> dict[tuple[str, int], int]:
    """Insert new people, refresh the contact details of known ones; return their ids."""
    keys = list(zip(people["ben_nir_psa"], people["ben_rng_gem"].astype(int), strict=True))
    existing: dict[tuple[str, int], Person] = {}
    for chunk_start in range(0, len(keys), 1000):
        chunk = keys[chunk_start : chunk_start + 1000]
        for p in session.exec(
            select(Person).where(
                tuple_(col(Person.ben_nir_psa), col(Person.ben_rng_gem)).in_(chunk)
            )
        ):
            existing[(p.ben_nir_psa, p.ben_rng_gem)] = p
    new_rows = []
    for row in people.itertuples(index=False):
        values = _person_values(row, now)
        key = (values["ben_nir_psa"], values["ben_rng_gem"])
        person = existing.get(key)
        if person is None:
            new_rows.append(values)
            continue
        # The fund's file is the reference for contact details, but an invalid mark stays
        # until the value itself changes.
        if person.telephone != values["telephone"]:
            person.phone_invalid = False
        if person.email != values["email"]:
            person.email_invalid = False
        if person.address_lines != values["address_lines"]:
            person.address_invalid = False
        for k in (
            "nir",
            "civilite",
            "nom",
            "prenom",
            "address_lines",
            "telephone",
            "email",
            "compte_ameli",
            "echelon",
            "departement",
            "sex",
            "birth_year",
            "birth_month",
            "updated_at",
        ):
            setattr(person, k, values[k])
    if new_rows:
        session.execute(insert(Person), new_rows)
    session.flush()
    ids: dict[tuple[str, int], int] = {}
    for chunk_start in range(0, len(keys), 1000):
        chunk = keys[chunk_start : chunk_start + 1000]
        for pid, nir_psa, rng in session.exec(
            select(Person.id, Person.ben_nir_psa, Person.ben_rng_gem).where(
                tuple_(col(Person.ben_nir_psa), col(Person.ben_rng_gem)).in_(chunk)
            )
        ):
            ids[(nir_psa, rng)] = pid  # type: ignore[assignment]
    return ids


def _enrolled_or_opposed(
    session: Session, definition: CampaignDefinition, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    """People the ledger knows to be enrolled or opposed to everything (newer than the extract)."""
    found: dict[tuple[str, int], str] = {}
    for i in range(0, len(keys), 1000):
        chunk = keys[i : i + 1000]
        for a, b in session.exec(
            select(Enrolment.ben_nir_psa, Enrolment.ben_rng_gem).where(
                goal_reached(definition.id, definition.goal),
                tuple_(col(Enrolment.ben_nir_psa), col(Enrolment.ben_rng_gem)).in_(chunk),
            )
        ):
            found[(a, b)] = "enrolled"
        for a, b in session.exec(
            select(Opposition.ben_nir_psa, Opposition.ben_rng_gem).where(
                Opposition.canal == "all",
                tuple_(col(Opposition.ben_nir_psa), col(Opposition.ben_rng_gem)).in_(chunk),
            )
        ):
            found.setdefault((a, b), "opposed")
    return found


def _current_members(session: Session, campaign_id: str) -> dict[tuple[str, int], Member]:
    """The campaign's members by person key."""
    return {
        (p, r): m
        for m, p, r in session.exec(
            select(Member, Person.ben_nir_psa, Person.ben_rng_gem)
            .join(Person, col(Person.id) == col(Member.person_id))
            .where(Member.campaign_id == campaign_id)
        )
    }


def _new_member_rows(
    definition: CampaignDefinition,
    fresh: pd.DataFrame,
    ids: dict[tuple[str, int], int],
    status: str,
    today: date,
) -> list[dict[str, Any]]:
    """One member row per newcomer with a person id, drawn into the holdout or not."""
    gap_names = list(definition.targeting.gaps)
    share = definition.holdout.share
    member_rows: list[dict[str, Any]] = []
    for row in fresh.itertuples(index=False):
        key = (str(row.ben_nir_psa), int(row.ben_rng_gem))  # type: ignore[arg-type]
        if key not in ids:
            continue
        holdout = in_holdout(definition.id, key[0], key[1], share)
        member_rows.append(
            {  # plain values for a bulk insert
                "campaign_id": definition.id,
                "person_id": ids[key],
                "echelon": row.echelon,
                "entered_on": today,
                "anchor_date": anchor_date(definition, row, today),
                "priority": bool(row.priority),
                "gaps": [g for g in gap_names if bool(getattr(row, g))],
                "holdout": holdout,
                "status": status,
                "last_seen_on": today,
            }
        )
    return member_rows


def _insert_members(
    session: Session, campaign_id: str, member_rows: list[dict[str, Any]], today: date
) -> None:
    """Bulk-insert the new members and their `entered` events."""
    session.execute(insert(Member), member_rows)
    session.flush()
    pids = [r["person_id"] for r in member_rows]
    new_ids: dict[int, int] = {}
    for i in range(0, len(pids), 1000):
        new_ids.update(
            session.exec(  # type: ignore[arg-type]
                select(Member.person_id, Member.id).where(
                    Member.campaign_id == campaign_id,
                    col(Member.person_id).in_(pids[i : i + 1000]),
                )
            ).all()
        )
    session.execute(
        insert(MemberEvent),
        [
            {
                "member_id": new_ids[r["person_id"]],
                "on": today,
                "kind": "entered",
                "detail": {
                    "anchor_date": r["anchor_date"].isoformat(),
                    "priority": r["priority"],
                    "gaps": r["gaps"],
                    "holdout": r["holdout"],
                },
            }
            for r in member_rows
        ],
    )


def _close_changed(
    session: Session,
    members: dict[tuple[str, int], Member],
    targets: pd.DataFrame,
    today: date,
    now: datetime,
    renewal_moves: bool = True,
) -> int:
    """Members seen again: close those whose situation changed since they entered.

    A later ALD renewal date than the member's anchor ends the cascade only for campaigns
    anchored on the renewal (`renewal_moves`)."""
    by_key = {
        (p, int(r)): row
        for p, r, row in zip(
            targets["ben_nir_psa"],
            targets["ben_rng_gem"],
            targets.itertuples(index=False),
            strict=True,
        )
    }
    left = 0
    for key, m in members.items():
        if m.status not in (ACTIVE, PENDING) or key not in by_key:
            continue
        row = by_key[key]
        m.last_seen_on = today
        reasons = (_s(row.reasons) or "").split(";")
        leave = next((_EXIT_REASONS[r] for r in reasons if r in _EXIT_REASONS), None)
        renewal = _day(getattr(row, "ald_end_date", None)) if renewal_moves else None
        if leave is None and renewal is not None and renewal > m.anchor_date:
            leave = (EXITED, Reason.RENEWED)
        if leave and close_member(
            session=session,
            member=m,
            status=leave[0],
            reason=leave[1],
            today=today,
            source="targeting",
            now=now,
        ):
            left += 1
    return left


def admit_targets(
    *,
    session: Session,
    definition: CampaignDefinition,
    targets: pd.DataFrame,
    people: pd.DataFrame,
    today: date,
    now: datetime | None = None,
) -> dict[str, int]:
    """Add newly eligible people to the campaign; close members whose situation changed.

    `targets` is the targeting output (eligible rows, plus any row of a current member);
    `people` holds the contact details of the eligible ones.
    """
    now = now or utcnow()
    counts = {
        "eligible": 0,
        "admitted": 0,
        "pending_validation": 0,
        "already_member": 0,
        "holdout": 0,
        "not_admitted_enrolled": 0,
        "not_admitted_opposed": 0,
        "left": 0,
    }
    members = _current_members(session, definition.id)
    eligible = targets[targets["eligible"].astype(bool)]
    counts["eligible"] = len(eligible)
    fresh = eligible.loc[_mask(eligible, lambda k: k not in members)]
    counts["already_member"] = len(eligible) - len(fresh)
    if not within_dates(definition, today):
        # Before the start or after the end: nobody new comes in (counted, and said).
        counts["not_admitted_outside_dates"] = len(fresh)
        if len(fresh):
            log.info(
                "%s : %d personne(s) éligible(s) non admise(s) le %s, hors des dates de la "
                "campagne (%s → %s)",
                definition.id,
                len(fresh),
                today.isoformat(),
                definition.dates.start.isoformat(),
                definition.dates.end.isoformat() if definition.dates.end else "sans fin",
            )
        fresh = fresh.iloc[0:0]
    blocked = _enrolled_or_opposed(
        session,
        definition,
        list(zip(fresh["ben_nir_psa"], fresh["ben_rng_gem"].astype(int), strict=True)),
    )
    if blocked:
        counts["not_admitted_enrolled"] = sum(1 for v in blocked.values() if v == "enrolled")
        counts["not_admitted_opposed"] = sum(1 for v in blocked.values() if v == "opposed")
        fresh = fresh.loc[_mask(fresh, lambda k: k not in blocked)]

    launched = is_launched(session=session, campaign_id=definition.id)
    if not launched:
        expire_overdue(session=session, campaign_id=definition.id, today=today, now=now)
    if len(fresh):
        # Before launch, newcomers wait on the list the échelons review.
        status = ACTIVE if launched else PENDING
        if not launched:
            open_list(session=session, definition=definition, today=today)
        contacts = people.merge(
            fresh[["ben_nir_psa", "ben_rng_gem"]], on=["ben_nir_psa", "ben_rng_gem"]
        )
        ids = upsert_people(session=session, people=contacts, now=now)
        member_rows = _new_member_rows(definition, fresh, ids, status, today)
        counts["holdout"] = sum(bool(r["holdout"]) for r in member_rows)
        if member_rows:
            _insert_members(session, definition.id, member_rows, today)
            counts["admitted"] = len(member_rows)
            if not launched:
                counts["pending_validation"] = len(member_rows)

    counts["left"] = _close_changed(
        session, members, targets, today, now, definition.anchor.kind == "ald_renewal"
    )
    return counts
