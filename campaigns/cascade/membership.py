"""Who is in a campaign: admitting targeted people, letting go of those whose situation changed."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import column, insert, table, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from campaigns.cascade.holdout import in_holdout
from campaigns.cascade.review import expire_overdue, is_launched, open_list
from campaigns.clock import utcnow
from campaigns.definition.model import CampaignDefinition
from campaigns.definition.reasons import Reason
from campaigns.ledger.bulk import is_postgresql, refresh_statistics, stage, stage_keys
from campaigns.ledger.goals import goal_reached
from campaigns.ledger.members import close_member
from campaigns.ledger.models import (
    ACTIVE,
    EXITED,
    GOAL,
    PENDING,
    Campaign,
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


def _paused(session: Session, campaign_id: str) -> bool:
    """Whether the campaign's manager paused it (and has not resumed nor ended it)."""
    row = session.get(Campaign, campaign_id)
    return row is not None and row.paused_at is not None and row.ended_at is None


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


_PERSON_COLUMNS = [
    ("ben_nir_psa", "text"),
    ("ben_rng_gem", "int"),
    ("nir", "text"),
    ("civilite", "text"),
    ("nom", "text"),
    ("prenom", "text"),
    ("address_lines", "json"),
    ("telephone", "text"),
    ("email", "text"),
    ("compte_ameli", "bool"),
    ("echelon", "text"),
    ("departement", "text"),
    ("sex", "int"),
    ("birth_year", "int"),
    ("birth_month", "int"),
    ("updated_at", "timestamp"),
]
_ENCRYPTED = {c: Person.__table__.c[c].type for c in ("nir", "telephone", "email")}  # type: ignore[attr-defined]
_SQLITE_CHUNK = 2000
# Members admitted at once past which the planner's statistics are refreshed.
_BULK = 10_000


def _keys_of(frame: pd.DataFrame) -> list[tuple[str, int]]:
    return list(
        zip(frame["ben_nir_psa"].astype(str), frame["ben_rng_gem"].astype(int), strict=True)
    )


def _key_strings(frame: pd.DataFrame) -> pd.Series:
    """`psa|rng` per row, to test membership of whole columns at once."""
    return frame["ben_nir_psa"].astype(str) + "|" + frame["ben_rng_gem"].astype(int).astype(str)


def _insert_people(session: Session, new_rows: list[dict[str, Any]]) -> None:
    """New people in one set-based insert (a person created meanwhile is left as it is)."""
    if not is_postgresql(session):
        for i in range(0, len(new_rows), _SQLITE_CHUNK):
            session.execute(
                sqlite_insert(Person).on_conflict_do_nothing(), new_rows[i : i + _SQLITE_CHUNK]
            )
        return
    dialect = session.get_bind().dialect
    names = [c for c, _ in _PERSON_COLUMNS]

    def values(r: dict[str, Any]) -> list[Any]:
        # The COPY bypasses SQLAlchemy's types: encrypt as the column type would.
        return [
            _ENCRYPTED[c].process_bind_param(r[c], dialect) if c in _ENCRYPTED else r[c]
            for c in names
        ]

    stage(
        session=session,
        name="_admit_people",
        columns=_PERSON_COLUMNS,
        rows=(values(r) for r in new_rows),
    )
    cols = ", ".join(names)
    session.connection().exec_driver_sql(
        f"INSERT INTO person ({cols}, phone_invalid, email_invalid, address_invalid) "
        f"SELECT {cols}, false, false, false FROM _admit_people "
        "ON CONFLICT (ben_nir_psa, ben_rng_gem) DO NOTHING"
    )


def _person_ids(session: Session, name: str) -> dict[tuple[str, int], int]:
    """Ids of the people whose keys are in the staging table `name`."""
    return {
        (psa, int(rng)): int(pid)
        for pid, psa, rng in session.connection().exec_driver_sql(
            f'SELECT p.id, p.ben_nir_psa, p.ben_rng_gem FROM person p JOIN "{name}" k '
            "ON k.ben_nir_psa = p.ben_nir_psa AND k.ben_rng_gem = p.ben_rng_gem"
        )
    }


def upsert_people(
    *, session: Session, people: pd.DataFrame, now: datetime
) -> dict[tuple[str, int], int]:
    """Insert new people, refresh the contact details of known ones; return their ids."""
    stage_keys(session=session, name="_admit_people_keys", keys=_keys_of(people))
    known = _person_ids(session, "_admit_people_keys")
    existing: dict[tuple[str, int], Person] = {}
    known_ids = list(known.values())
    for i in range(0, len(known_ids), 1000):
        for p in session.exec(select(Person).where(col(Person.id).in_(known_ids[i : i + 1000]))):
            existing[(p.ben_nir_psa, p.ben_rng_gem)] = p
    new_rows = []
    for row in people.astype(object).itertuples(index=False):
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
        _insert_people(session, new_rows)
    session.flush()
    return _person_ids(session, "_admit_people_keys") if new_rows else known


def _enrolled_or_opposed(
    session: Session, definition: CampaignDefinition, fresh: set[str]
) -> dict[tuple[str, int], str]:
    """People the ledger knows to be enrolled or opposed to everything (newer than the extract).

    Asked of the targets staged in `_admit_keys`, kept to the newcomers (`psa|rng` strings).
    """
    found: dict[tuple[str, int], str] = {}
    if not fresh:
        return found
    keys = table("_admit_keys", column("ben_nir_psa"), column("ben_rng_gem"))
    on_enrolment = (keys.c.ben_nir_psa == col(Enrolment.ben_nir_psa)) & (
        keys.c.ben_rng_gem == col(Enrolment.ben_rng_gem)
    )
    on_opposition = (keys.c.ben_nir_psa == col(Opposition.ben_nir_psa)) & (
        keys.c.ben_rng_gem == col(Opposition.ben_rng_gem)
    )
    for a, b in session.exec(
        select(Enrolment.ben_nir_psa, Enrolment.ben_rng_gem)
        .join(keys, on_enrolment)
        .where(goal_reached(definition.id, definition.goal))
    ):
        if f"{a}|{b}" in fresh:
            found[(a, b)] = "enrolled"
    for a, b in session.exec(
        select(Opposition.ben_nir_psa, Opposition.ben_rng_gem)
        .join(keys, on_opposition)
        .where(Opposition.canal == "all")
    ):
        if f"{a}|{b}" in fresh:
            found.setdefault((a, b), "opposed")
    return found


@dataclass(frozen=True, slots=True)
class _Known:
    """What admission needs of a current member (no ORM object: there may be millions)."""

    id: int
    status: str
    anchor_date: date


def _current_members(session: Session, campaign_id: str) -> dict[tuple[str, int], _Known]:
    """The campaign's members by person key."""
    return {
        (p, int(r)): _Known(int(i), s, a)
        for i, s, a, p, r in session.execute(
            sa_select(
                col(Member.id),
                col(Member.status),
                col(Member.anchor_date),
                col(Person.ben_nir_psa),
                col(Person.ben_rng_gem),
            )
            .join(Person, col(Person.id) == col(Member.person_id))
            .where(col(Member.campaign_id) == campaign_id)
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
    for row in fresh.astype(object).itertuples(index=False):
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


_MEMBER_COLUMNS = [
    ("campaign_id", "text"),
    ("person_id", "int"),
    ("echelon", "text"),
    ("entered_on", "date"),
    ("anchor_date", "date"),
    ("priority", "bool"),
    ("gaps", "json"),
    ("holdout", "bool"),
    ("status", "text"),
    ("last_seen_on", "date"),
]


def _entered_detail(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "anchor_date": r["anchor_date"].isoformat(),
        "priority": r["priority"],
        "gaps": r["gaps"],
        "holdout": r["holdout"],
    }


def _insert_members(
    session: Session, campaign_id: str, member_rows: list[dict[str, Any]], today: date
) -> int:
    """Insert the new members and their `entered` events; return how many went in.

    A member already there (a second admission of the same day) is left alone, with no
    second `entered` event."""
    if is_postgresql(session):
        # COPY into a staging table, then one statement: members in, events for those in.
        names = [c for c, _ in _MEMBER_COLUMNS]
        stage(
            session=session,
            name="_admit_members",
            columns=[*_MEMBER_COLUMNS, ("detail", "json")],
            rows=([*(r[c] for c in names), _entered_detail(r)] for r in member_rows),
        )
        cols = ", ".join(names)
        return int(
            session.connection()
            .exec_driver_sql(
                f"WITH new AS (INSERT INTO member ({cols}) SELECT {cols} FROM _admit_members "
                "ON CONFLICT (campaign_id, person_id) DO NOTHING RETURNING id, person_id), "
                'ins AS (INSERT INTO memberevent (member_id, "on", kind, detail) '
                "SELECT new.id, s.entered_on, 'entered', s.detail FROM new "
                "JOIN _admit_members s ON s.person_id = new.person_id RETURNING 1) "
                "SELECT count(*) FROM ins"
            )
            .scalar_one()
        )
    new_ids: dict[int, int] = {}
    for i in range(0, len(member_rows), _SQLITE_CHUNK):
        new_ids.update(
            (int(pid), int(mid))
            for mid, pid in session.execute(
                sqlite_insert(Member)
                .values(member_rows[i : i + _SQLITE_CHUNK])
                .on_conflict_do_nothing()
                .returning(col(Member.id), col(Member.person_id))
            )
        )
    events = [
        {
            "member_id": new_ids[r["person_id"]],
            "on": today,
            "kind": "entered",
            "detail": _entered_detail(r),
        }
        for r in member_rows
        if r["person_id"] in new_ids
    ]
    for i in range(0, len(events), _SQLITE_CHUNK):
        session.execute(insert(MemberEvent), events[i : i + _SQLITE_CHUNK])
    return len(events)


def _close_changed(
    session: Session,
    campaign_id: str,
    members: dict[tuple[str, int], _Known],
    targets: pd.DataFrame,
    today: date,
    now: datetime,
    renewal_moves: bool = True,
) -> int:
    """Members seen again: close those whose situation changed since they entered.

    A later ALD renewal date than the member's anchor ends the cascade only for campaigns
    anchored on the renewal (`renewal_moves`)."""
    open_ = {k: m for k, m in members.items() if m.status in (ACTIVE, PENDING)}
    if not open_:
        return 0
    # Every open member seen again is marked seen, in one statement (targets in `_admit_keys`).
    keys = table("_admit_keys", column("ben_nir_psa"), column("ben_rng_gem"))
    seen = (
        select(col(Person.id))
        .join(
            keys,
            (keys.c.ben_nir_psa == col(Person.ben_nir_psa))
            & (keys.c.ben_rng_gem == col(Person.ben_rng_gem)),
        )
        .scalar_subquery()
    )
    session.execute(
        update(Member)
        .where(
            col(Member.campaign_id) == campaign_id,
            col(Member.status).in_((ACTIVE, PENDING)),
            col(Member.person_id).in_(seen),
        )
        .values(last_seen_on=today)
        .execution_options(synchronize_session=False)
    )
    left = 0
    has_renewal = renewal_moves and "ald_end_date" in targets.columns
    for psa, rng, reasons_v, renewal_v in zip(
        targets["ben_nir_psa"],
        targets["ben_rng_gem"],
        targets["reasons"] if "reasons" in targets.columns else [None] * len(targets),
        targets["ald_end_date"] if has_renewal else [None] * len(targets),
        strict=True,
    ):
        m = open_.get((str(psa), int(rng)))
        if m is None:
            continue
        reasons = (_s(reasons_v) or "").split(";")
        leave = next((_EXIT_REASONS[r] for r in reasons if r in _EXIT_REASONS), None)
        renewal = _day(renewal_v) if has_renewal else None
        if leave is None and renewal is not None and renewal > m.anchor_date:
            leave = (EXITED, Reason.RENEWED)
        member = session.get(Member, m.id) if leave else None
        if (
            leave
            and member is not None
            and close_member(
                session=session,
                member=member,
                status=leave[0],
                reason=leave[1],
                today=today,
                source="targeting",
                now=now,
            )
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
    # Every target's key goes to the database once; the lookups below join on it.
    stage_keys(session=session, name="_admit_keys", keys=_keys_of(targets))
    eligible = targets[targets["eligible"].astype(bool)]
    counts["eligible"] = len(eligible)
    member_keys = {f"{p}|{r}" for p, r in members}
    fresh = eligible.loc[~_key_strings(eligible).isin(member_keys).to_numpy()]
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
    if len(fresh) and _paused(session, definition.id):
        # Paused by its manager: nobody new comes in; still eligible, they are admitted by the
        # first targeting after the resume (counted here, so the stage's record says why).
        counts["not_admitted_paused"] = len(fresh)
        log.info(
            "%s : %d personne(s) éligible(s) non admise(s) le %s, campagne en pause",
            definition.id,
            len(fresh),
            today.isoformat(),
        )
        fresh = fresh.iloc[0:0]
    blocked = _enrolled_or_opposed(session, definition, set(_key_strings(fresh)))
    if blocked:
        counts["not_admitted_enrolled"] = sum(1 for v in blocked.values() if v == "enrolled")
        counts["not_admitted_opposed"] = sum(1 for v in blocked.values() if v == "opposed")
        gone = {f"{p}|{r}" for p, r in blocked}
        fresh = fresh.loc[~_key_strings(fresh).isin(gone).to_numpy()]

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
            counts["admitted"] = _insert_members(session, definition.id, member_rows, today)
            if counts["admitted"] >= _BULK:
                refresh_statistics(session, ("person", "member", "memberevent"))
            if not launched:
                counts["pending_validation"] = counts["admitted"]

    counts["left"] = _close_changed(
        session,
        definition.id,
        members,
        targets,
        today,
        now,
        definition.anchor.kind == "ald_renewal",
    )
    return counts
