"""Who is in a campaign: admitting targeted people, letting go of those whose situation changed."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from json.encoder import encode_basestring_ascii
from types import SimpleNamespace
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
from campaigns.ledger.bulk import (
    ahead,
    copy_into,
    gc_paused,
    is_postgresql,
    refresh_statistics,
    reserve_ids,
    stage_keys,
    xact_lock,
)
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


def _texts(frame: pd.DataFrame, name: str) -> list[str | None]:
    """A column's values as text, blanks and NA as None."""
    return [_s(v) for v in frame[name].tolist()]


def _person_columns(people: pd.DataFrame, now: datetime) -> dict[str, list[Any]]:
    """The person table's values of each row of the contact file, column by column."""
    lines = [_texts(people, f"adresse_l{i}") for i in range(1, 7)]
    return {
        "ben_nir_psa": people["ben_nir_psa"].tolist(),
        "ben_rng_gem": [int(v) for v in people["ben_rng_gem"].tolist()],
        "nir": people["nir"].tolist(),
        "civilite": people["civilite"].tolist(),
        "nom": people["nom"].tolist(),
        "prenom": people["prenom"].tolist(),
        "address_lines": [[x for x in row if x] for row in zip(*lines, strict=True)],
        "telephone": _texts(people, "telephone"),
        "email": _texts(people, "email"),
        "compte_ameli": [bool(v) for v in people["compte_ameli"].tolist()],
        "echelon": people["echelon"].tolist(),
        "departement": people["ben_res_dpt"].tolist(),
        "sex": [int(v) for v in people["ben_sex_cod"].tolist()],
        "birth_year": [
            int(y) if y and y != "1600" else None for y in _texts(people, "ben_nai_ann")
        ],
        "birth_month": [int(m) if m else None for m in _texts(people, "ben_nai_moi")],
        "updated_at": [now] * len(people),
    }


_ENCRYPTED = {c: Person.__table__.c[c].type for c in ("nir", "telephone", "email")}  # type: ignore[attr-defined]
_SQLITE_CHUNK = 2000
# Members admitted at once past which the planner's statistics are refreshed.
_BULK = 10_000
# Advisory locks (PostgreSQL): people created by one admission at a time; one admission of
# a campaign at a time.
_PEOPLE_LOCK = 0x52454C50  # "RELP"
_MEMBERS_LOCK = 0x52454C4D  # "RELM", with the campaign id


def _keys_of(frame: pd.DataFrame) -> list[tuple[str, int]]:
    return list(
        zip(frame["ben_nir_psa"].astype(str), frame["ben_rng_gem"].astype(int), strict=True)
    )


def _key_strings(frame: pd.DataFrame) -> pd.Series:
    """`psa|rng` per row, to test membership of whole columns at once."""
    return frame["ben_nir_psa"].astype(str) + "|" + frame["ben_rng_gem"].astype(int).astype(str)


def _rows(columns: dict[str, list[Any]]) -> Iterator[tuple[Any, ...]]:
    """The rows of a table held column by column."""
    return zip(*columns.values(), strict=True)


def _dicts(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The rows of a table held column by column, each as a dict (for SQLAlchemy inserts)."""
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in _rows(columns)]


def _person_ids(session: Session, name: str) -> dict[tuple[str, int], int]:
    """Ids of the people whose keys are in the staging table `name`."""
    return {
        (psa, int(rng)): int(pid)
        for pid, psa, rng in session.connection().exec_driver_sql(
            f'SELECT p.id, p.ben_nir_psa, p.ben_rng_gem FROM person p JOIN "{name}" k '
            "ON k.ben_nir_psa = p.ben_nir_psa AND k.ben_rng_gem = p.ben_rng_gem"
        )
    }


_REFRESHED = (
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
)


def _refresh_known(
    session: Session, ids: list[int], rows: dict[tuple[str, int], dict[str, Any]]
) -> None:
    """Known people take the contact file's details (their ORM rows, flushed with the session)."""
    for i in range(0, len(ids), 1000):
        for person in session.exec(select(Person).where(col(Person.id).in_(ids[i : i + 1000]))):
            values = rows[(person.ben_nir_psa, person.ben_rng_gem)]
            # The fund's file is the reference for contact details, but an invalid mark stays
            # until the value itself changes.
            if person.telephone != values["telephone"]:
                person.phone_invalid = False
            if person.email != values["email"]:
                person.email_invalid = False
            if person.address_lines != values["address_lines"]:
                person.address_invalid = False
            for k in _REFRESHED:
                setattr(person, k, values[k])


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


def _memo(fn: Any, values: list[Any]) -> list[Any]:
    """fn of each value, computed once per distinct value."""
    seen: dict[Any, Any] = {}
    out = []
    for v in values:
        try:
            r = seen[v]
        except KeyError:
            r = seen[v] = fn(v)
        except TypeError:  # unhashable
            r = fn(v)
        out.append(r)
    return out


def anchor_dates(definition: CampaignDefinition, frame: pd.DataFrame, today: date) -> list[date]:
    """`anchor_date` of every row of the frame (computed once per distinct source value)."""
    source = {"ald_renewal": "ald_end_date", "birthday": "birth_date"}.get(definition.anchor.kind)
    if source is None or source not in frame.columns:
        return [anchor_date(definition, None, today)] * len(frame)
    return _memo(
        lambda v: anchor_date(definition, SimpleNamespace(**{source: v}), today),
        frame[source].tolist(),
    )


def _members_of(
    definition: CampaignDefinition,
    fresh: pd.DataFrame,
    person_ids: list[int],
    status: str,
    today: date,
) -> dict[str, list[Any]]:
    """The member table's values of newcomers (rows of the targeting output, with their person
    ids), column by column, each drawn into the holdout or not."""
    keys = _keys_of(fresh)
    gap_names = list(definition.targeting.gaps)
    flags = [[bool(v) for v in fresh[g].tolist()] for g in gap_names]
    share = definition.holdout.share
    n = len(keys)
    return {
        "campaign_id": [definition.id] * n,
        "person_id": person_ids,
        "echelon": fresh["echelon"].tolist(),
        "entered_on": [today] * n,
        "anchor_date": anchor_dates(definition, fresh, today),
        "priority": [bool(v) for v in fresh["priority"].tolist()],
        "gaps": [
            [g for g, f in zip(gap_names, row, strict=True) if f]
            for row in zip(*flags, strict=True)
        ]
        if gap_names
        else [[] for _ in range(n)],
        "holdout": [in_holdout(definition.id, psa, rng, share) for psa, rng in keys],
        "status": [status] * n,
        "last_seen_on": [today] * n,
    }


def _entered_detail(anchor: date, priority: bool, gaps: list[str], holdout: bool) -> dict[str, Any]:
    return {
        "anchor_date": anchor.isoformat(),
        "priority": priority,
        "gaps": gaps,
        "holdout": holdout,
    }


def _facts(members: dict[str, list[Any]]) -> list[tuple[date, bool, list[str], bool]]:
    """What each member's `entered` event records."""
    return list(
        zip(
            members["anchor_date"],
            members["priority"],
            members["gaps"],
            members["holdout"],
            strict=True,
        )
    )


# Rows prepared per chunk on PostgreSQL (people, members, events), while the previous chunk's
# COPY runs.
_CHUNK = 50_000


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One chunk of newcomers, as rows ready for COPY."""

    people: tuple[list[str], list[tuple[Any, ...]]]
    members: tuple[list[str], list[tuple[Any, ...]]]
    events: list[tuple[Any, ...]]
    holdout: int


_PERSON_FLAGS = ("phone_invalid", "email_invalid", "address_invalid")


def _person_rows(
    values: dict[str, list[Any]], ids: list[int]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Columns and rows of the person table for COPY: the COPY bypasses
    SQLAlchemy's types, so values are encrypted and serialised as the column types would."""
    columns = {
        "id": ids,
        **values,
        **{c: t.bind_many(values[c]) for c, t in _ENCRYPTED.items()},
        "address_lines": [_json_strings(lines) for lines in values["address_lines"]],
    }
    flags = [False] * len(ids)
    columns |= {f: flags for f in _PERSON_FLAGS}
    return list(columns), list(_rows(columns))


def _json_strings(values: list[str]) -> str:
    """`json.dumps` of a list of strings, without its generic machinery."""
    return "[" + ", ".join(map(encode_basestring_ascii, values)) + "]"


def _write_newcomers_pg(
    session: Session,
    definition: CampaignDefinition,
    cohort: _Cohort,
    status: str,
    today: date,
    now: datetime,
) -> tuple[int, int]:
    """PostgreSQL: people, members and `entered` events by COPY, chunk by chunk; each chunk's
    rows are built (encryption included) in a thread while the database takes the previous
    one, so the two cores work at once. Returns (admitted, held out)."""
    n = len(cohort.keys)
    new = [k not in cohort.known for k in cohort.keys]
    created = iter(reserve_ids(session, "person", sum(new)))
    person_ids = [
        next(created) if is_new else cohort.known[k]
        for k, is_new in zip(cohort.keys, new, strict=True)
    ]
    member_ids = reserve_ids(session, "member", n)

    def chunks() -> Iterator[_Chunk]:
        for a in range(0, n, _CHUNK):
            b = min(a + _CHUNK, n)
            unknown = [i for i in range(a, b) if new[i]]
            people = cohort.contacts.iloc[unknown]
            members = _members_of(
                definition, cohort.targets.iloc[a:b], person_ids[a:b], status, today
            )
            details = _memo(
                lambda f: json.dumps(_entered_detail(f[0], f[1], list(f[2]), f[3])),
                [(d, p, tuple(g), h) for d, p, g, h in _facts(members)],
            )
            ids = member_ids[a:b]
            gaps = [_json_strings(g) for g in members["gaps"]]
            rows_of_members = {"id": list(ids), **members, "gaps": gaps}
            yield _Chunk(
                people=_person_rows(_person_columns(people, now), [person_ids[i] for i in unknown]),
                members=(list(rows_of_members), list(_rows(rows_of_members))),
                events=[(i, today, "entered", d) for i, d in zip(ids, details, strict=True)],
                holdout=sum(members["holdout"]),
            )

    held = 0
    with gc_paused():
        for chunk in ahead(chunks()):
            if chunk.people[1]:
                names, values = chunk.people
                copy_into(session=session, table="person", columns=names, rows=values)
            names, values = chunk.members
            copy_into(session=session, table="member", columns=names, rows=values)
            copy_into(
                session=session,
                table="memberevent",
                columns=["member_id", "on", "kind", "detail"],
                rows=chunk.events,
            )
            held += chunk.holdout
    return n, held


def _write_newcomers_sqlite(
    session: Session,
    definition: CampaignDefinition,
    cohort: _Cohort,
    status: str,
    today: date,
    now: datetime,
) -> tuple[int, int]:
    """SQLite: people, then members and their `entered` events, by multi-row inserts (one
    writer at a time: nobody creates them meanwhile). Returns (admitted, held out)."""
    new = [i for i, k in enumerate(cohort.keys) if k not in cohort.known]
    if new:
        rows = _dicts(_person_columns(cohort.contacts.iloc[new], now))
        for i in range(0, len(rows), _SQLITE_CHUNK):
            session.execute(
                sqlite_insert(Person).on_conflict_do_nothing(), rows[i : i + _SQLITE_CHUNK]
            )
    ids = _person_ids(session, "_admit_people_keys") if new else cohort.known
    members = _members_of(definition, cohort.targets, [ids[k] for k in cohort.keys], status, today)
    member_rows = _dicts(members)
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
        {"member_id": new_ids[pid], "on": today, "kind": "entered", "detail": _entered_detail(*f)}
        for pid, f in zip(members["person_id"], _facts(members), strict=True)
        if pid in new_ids
    ]
    for i in range(0, len(events), _SQLITE_CHUNK):
        session.execute(insert(MemberEvent), events[i : i + _SQLITE_CHUNK])
    return len(events), sum(members["holdout"])


@dataclass(frozen=True, slots=True)
class _Cohort:
    """Today's newcomers: their contact rows and targeting rows aligned (one row per person,
    each newcomer with a contact row), their keys, and the ids of those already known."""

    contacts: pd.DataFrame
    targets: pd.DataFrame
    keys: list[tuple[str, int]]
    known: dict[tuple[str, int], int]


def _cohort(session: Session, fresh: pd.DataFrame, people: pd.DataFrame, now: datetime) -> _Cohort:
    """Align the newcomers with their contact rows, find who is known already and refresh
    their details (a person twice in a file is taken from their first row)."""
    on = ["ben_nir_psa", "ben_rng_gem"]
    fresh = fresh.drop_duplicates(on)
    contacts = people.drop_duplicates(on).merge(fresh[on], on=on)
    targets = contacts[on].merge(fresh, on=on, how="left")
    if is_postgresql(session):
        # People are created by one admission at a time: who is new is decided below, then
        # written by COPY, without another admission creating the same person in between.
        xact_lock(session, _PEOPLE_LOCK, "person")
    keys = _keys_of(contacts)
    stage_keys(session=session, name="_admit_people_keys", keys=keys)
    known = _person_ids(session, "_admit_people_keys")
    if known:
        seen = [i for i, k in enumerate(keys) if k in known]
        rows = _dicts(_person_columns(contacts.iloc[seen], now))
        _refresh_known(
            session, list(known.values()), {keys[i]: r for i, r in zip(seen, rows, strict=True)}
        )
        session.flush()
    return _Cohort(contacts=contacts, targets=targets, keys=keys, known=known)


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
    if is_postgresql(session):
        # One admission of a campaign at a time: the second sees the first's members.
        xact_lock(session, _MEMBERS_LOCK, definition.id)
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
        cohort = _cohort(session, fresh, people, now)
        write = _write_newcomers_pg if is_postgresql(session) else _write_newcomers_sqlite
        counts["admitted"], counts["holdout"] = write(
            session, definition, cohort, status, today, now
        )
        if counts["admitted"]:
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
