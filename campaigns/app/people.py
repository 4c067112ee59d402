"""Finding a person without an internal id (a supervisor recording an opposition phoned in),
and a person's stored targeting explanation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns.clock import utcnow
from campaigns.definition.catalog import campaign_by_id
from campaigns.ledger.audit import record
from campaigns.ledger.explanations import (
    store_explanation,
    store_explanations,
    stored_explanation,
)
from campaigns.ledger.models import Member, MemberExplanation, Person

if TYPE_CHECKING:
    from targeting.rule import TargetingRule

MAX_RESULTS = 20
_BIRTH = re.compile(r"^\s*(?:(\d{1,2})/)?(\d{1,2})/(\d{4})\s*$")
_POSTCODE = re.compile(r"^\s*(\d{5})\s*$")


class SearchError(ValueError):
    """A search the console refuses, said in French."""


@dataclass(frozen=True)
class Found:
    """One person as a search shows them: masked, with their campaigns to open."""

    initials: str
    birth: str
    postcode: str
    nir: str
    memberships: list[dict[str, Any]] = field(default_factory=list)


def mask_nir(nir: str) -> str:
    """Sex and birth year only: never the NIR in clear."""
    return nir[:3] + " •• •• ••• ••• ••" if nir else "—"


def _postcode(lines: list[str]) -> str:
    for line in reversed(lines or []):
        m = re.match(r"^\s*(\d{5})\b", line or "")
        if m:
            return m.group(1)
    return ""


def _criteria(nom: str, birth: str, postcode: str) -> tuple[str, int, int, str]:
    nom = nom.strip()
    if len(nom) < 2:
        raise SearchError("indiquez le nom de naissance ou d'usage (2 lettres au moins)")
    b = _BIRTH.match(birth or "")
    if b is None:
        raise SearchError("indiquez la date de naissance au format jj/mm/aaaa (ou mm/aaaa)")
    month, year = int(b.group(2)), int(b.group(3))
    if not 1 <= month <= 12:
        raise SearchError("mois de naissance invalide")
    p = _POSTCODE.match(postcode or "")
    if p is None:
        raise SearchError("indiquez le code postal (5 chiffres)")
    return nom, year, month, p.group(1)


def search_people(
    *,
    session: Session,
    actor: str,
    nom: str,
    birth: str,
    postcode: str,
    now: datetime | None = None,
) -> list[Found]:
    """People matching a name, a birth date (month and year: the fund's file has no day) and a
    postcode, masked; the search is audited (its criteria names, not their values)."""
    nom, year, month, code = _criteria(nom, birth, postcode)
    people = session.exec(
        select(Person)
        .where(
            func.lower(Person.nom) == nom.lower(),
            Person.birth_year == year,
            Person.birth_month == month,
        )
        .order_by(col(Person.id))
    ).all()
    matches = [p for p in people if _postcode(p.address_lines) == code][:MAX_RESULTS]
    found = [_found(session, p, code) for p in matches]
    record(
        session=session,
        actor=actor,
        action="search_person",
        target="person",
        detail={"criteria": ["nom", "naissance", "code_postal"], "results": len(found)},
        now=now or utcnow(),
    )
    return found


def _found(session: Session, p: Person, code: str) -> Found:
    members = session.exec(
        select(Member).where(Member.person_id == p.id).order_by(col(Member.id))
    ).all()
    return Found(
        initials=f"{p.prenom[:1]}. {p.nom[:1]}.".upper() if p.prenom else f"{p.nom[:1]}.",
        birth=f"{p.birth_month:02d}/{p.birth_year}" if p.birth_month and p.birth_year else "—",
        postcode=code,
        nir=mask_nir(p.nir),
        memberships=[
            {
                "campaign_id": m.campaign_id,
                "member_id": m.id,
                "echelon": m.echelon,
                "status": m.status,
            }
            for m in members
        ],
    )


def member_explanation(*, session: Session, member_id: int, extract: Path) -> dict[str, Any]:
    """A member's targeting explanation: the stored one, else computed once and stored.

    The person page reads it; it never reruns the targeting engine once it is stored.
    """
    known = stored_explanation(session=session, member_id=member_id)
    if known is not None:
        return known
    m = session.get(Member, member_id)
    p = session.get(Person, m.person_id) if m is not None else None
    if m is None or p is None:
        raise LookupError("personne inconnue")
    store_explanation(
        session=session,
        member_id=member_id,
        as_of=m.entered_on,
        explanation=_explain(m, p, extract),
        now=utcnow(),
    )
    return stored_explanation(session=session, member_id=member_id) or {}


def _explain(m: Member, p: Person, extract: Path) -> Any:
    # The extract reader (DuckDB) is heavy: loaded only when an explanation is missing.
    from targeting.explain import explain_person

    return explain_person(
        rule=campaign_by_id(m.campaign_id).definition.targeting,
        extract=extract,
        as_of=m.entered_on,
        ben_nir_psa=p.ben_nir_psa,
        ben_rng_gem=p.ben_rng_gem,
    )


def store_admission_explanations(
    *,
    session: Session,
    campaign_id: str,
    extract: Path,
    day: date,
    rule: TargetingRule | None = None,
    now: datetime | None = None,
) -> int:
    """Store the explanation of every member admitted on `day` that has none yet, in one
    set-based pass over the extract and one bulk insert (the targeting stage calls it right
    after admission); how many were stored."""
    # The extract reader (DuckDB) is heavy: loaded only by the stage that stores.
    from targeting.explain import explain_people

    rows = session.exec(
        select(Member.id, Person.ben_nir_psa, Person.ben_rng_gem)
        .join(Person, col(Person.id) == col(Member.person_id))
        .outerjoin(MemberExplanation, col(MemberExplanation.member_id) == col(Member.id))
        .where(
            Member.campaign_id == campaign_id,
            Member.entered_on == day,
            col(MemberExplanation.member_id).is_(None),
        )
        .order_by(col(Member.id))
    ).all()
    if not rows:
        return 0
    found = explain_people(
        rule=rule or campaign_by_id(campaign_id).definition.targeting,
        extract=extract,
        as_of=day,
        keys=[(nir, rng) for _, nir, rng in rows],
    )
    at = now or utcnow()
    store_explanations(
        session=session,
        rows=[(mid or 0, day, x) for (mid, _, _), x in zip(rows, found, strict=True)],
        now=at,
    )
    return len(rows)
