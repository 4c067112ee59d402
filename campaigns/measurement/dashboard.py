"""What regional leads follow: enrolments against objectives per échelon, the funnel, the pace."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, distinct, select

from campaigns.clock import utcnow
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.models import Enrolment, Member, Objective, Person
from campaigns.measurement.effect import projected_attainment
from campaigns.measurement.period import Period
from campaigns.measurement.report import echelon_report, total_row


@dataclass
class ResultRow:
    """One échelon's line of the regional table."""

    echelon: str
    name: str
    eligible: int
    priority: int
    holdout: int
    contacted: int
    called: int
    reached: int
    mailbox: int
    letters: int
    enrolled: int
    objective: int
    objective_rate: float | None
    attainment: float | None
    projected: float | None

    def as_dict(self) -> dict[str, Any]:
        """Plain values."""
        return asdict(self)


COLUMNS = [
    ("echelon", "échelon"),
    ("name", "nom"),
    ("eligible", "éligibles"),
    ("priority", "prioritaires"),
    ("holdout", "témoins"),
    ("contacted", "contactés"),
    ("called", "appelés"),
    ("reached", "joints au téléphone"),
    ("mailbox", "messages ameli"),
    ("letters", "courriers"),
    ("enrolled", "adhésions"),
    ("objective", "objectif"),
    ("objective_rate", "objectif % des éligibles"),
    ("attainment", "atteinte %"),
    ("projected", "projection fin d'année %"),
]

# One line per count, shown beside it on the page and in the exports: what is counted, exactly.
DEFINITIONS = {
    "echelon": "le département (échelon local) de la personne",
    "name": "le nom de l'échelon",
    "eligible": "personnes entrées dans la campagne au plus tard à la fin de la période",
    "priority": "éligibles marqués prioritaires par le ciblage",
    "holdout": "éligibles tirés au sort dans le groupe témoin, jamais contactés",
    "contacted": "personnes avec au moins une action envoyée ou un appel abouti dans la période",
    "called": "personnes avec au moins un appel passé dans la période, abouti ou non",
    "reached": "personnes jointes au téléphone (appel abouti) dans la période",
    "mailbox": "personnes avec au moins un message ameli déposé dans la période",
    "letters": "personnes avec au moins un courrier envoyé dans la période",
    "enrolled": "personnes ayant atteint l'objectif dans la période, après leur entrée",
    "objective": "le dernier objectif fixé pour l'échelon",
    "objective_rate": "l'objectif en pourcentage des éligibles",
    "attainment": "atteintes de l'objectif divisées par l'objectif, en %",
    "projected": "l'atteinte en fin d'année au rythme observé sur la période, en %",
}


def started_on(*, session: Session, campaign_id: str) -> date | None:
    """The first day anyone entered the campaign."""
    first: date | None = session.exec(
        select(func.min(Member.entered_on)).where(Member.campaign_id == campaign_id)
    ).one()
    return first


def results(
    *,
    session: Session,
    definition: CampaignDefinition,
    today: date,
    period: Period | None = None,
) -> tuple[list[ResultRow], ResultRow]:
    """Per échelon and in total: the funnel, objective, attainment and year-end projection."""
    since, until = (period.since, period.until) if period else (None, None)
    base = echelon_report(
        session=session,
        campaign_id=definition.id,
        objectives=definition.objectives,
        since=since,
        until=until,
    )
    launched = started_on(session=session, campaign_id=definition.id)
    start = max(launched, since) if launched and since else launched
    elapsed = ((until or today) - start).days + 1 if start else 0

    def make(r: Any) -> ResultRow:
        return ResultRow(
            echelon=r.echelon,
            name=r.name,
            eligible=r.eligible,
            priority=r.priority,
            holdout=r.holdout,
            contacted=r.contacted,
            called=r.called,
            reached=r.reached,
            mailbox=r.mailbox,
            letters=r.letters,
            enrolled=r.enrolled,
            objective=r.objective,
            objective_rate=None if r.objective_rate is None else 100.0 * r.objective_rate,
            attainment=r.attainment,
            projected=projected_attainment(
                enrolled=r.enrolled, objective=r.objective, days_elapsed=elapsed
            ),
        )

    rows = [make(r) for r in base]
    total = make(total_row(base))
    return rows, total


def funnel(row: ResultRow, goal: str = "adhésions") -> list[tuple[str, int]]:
    """The steps from targeted to the goal (named in the campaign's words), for one row."""
    return [
        ("éligibles", row.eligible),
        ("hors groupe témoin", row.eligible - row.holdout),
        ("contactés", row.contacted),
        ("joints au téléphone", row.reached),
        (goal, row.enrolled),
    ]


def cumulative_enrolments(
    *,
    session: Session,
    campaign_id: str,
    echelon: str | None = None,
    period: Period | None = None,
) -> list[tuple[date, int]]:
    """Goals reached by members (this campaign's goal rows) since they entered, by day."""
    stmt = (
        select(col(Enrolment.enrolled_on), func.count(distinct(col(Member.id))))
        .join(
            Person,
            (col(Person.ben_nir_psa) == col(Enrolment.ben_nir_psa))
            & (col(Person.ben_rng_gem) == col(Enrolment.ben_rng_gem)),
        )
        .join(
            Member,
            (col(Member.person_id) == col(Person.id))
            & (col(Member.campaign_id) == col(Enrolment.campaign_id)),
        )
        .where(
            Member.campaign_id == campaign_id,
            col(Enrolment.enrolled_on) >= col(Member.entered_on),
        )
        .group_by(col(Enrolment.enrolled_on))
        .order_by(col(Enrolment.enrolled_on))
    )
    if echelon is not None:
        stmt = stmt.where(Member.echelon == echelon)
    if period is not None and period.since is not None:
        stmt = stmt.where(col(Enrolment.enrolled_on) >= period.since)
    if period is not None:
        stmt = stmt.where(col(Enrolment.enrolled_on) <= period.until)
    out, total = [], 0
    for day, n in session.exec(stmt).all():
        total += int(n)
        out.append((day, total))
    return out


def objective_history(*, session: Session, campaign_id: str) -> list[Objective]:
    """Every objective ever set, newest first."""
    return list(
        session.exec(
            select(Objective)
            .where(Objective.campaign_id == campaign_id)
            .order_by(col(Objective.set_at).desc(), col(Objective.id).desc())
        )
    )


# More people than the country insures: a typing slip (and past what the ledger stores).
MAX_OBJECTIVE = 100_000_000
_MAX_TEXT = "au plus 100 000 000"


class ObjectiveError(ValueError):
    """Objectives that cannot be set as given (nothing was changed)."""


def set_objectives(
    *,
    session: Session,
    campaign_id: str,
    targets: dict[str, int],
    by: str,
    note: str | None = None,
    now: datetime | None = None,
) -> int:
    """Record new objectives (the old ones stay in the history)."""
    now = now or utcnow()
    for echelon, target in targets.items():
        if target < 0:
            raise ObjectiveError(f"échelon {echelon}: un objectif ne peut pas être négatif")
        if target > MAX_OBJECTIVE:
            raise ObjectiveError(f"échelon {echelon} : un objectif vaut {_MAX_TEXT}")
    for echelon, target in sorted(targets.items()):
        session.add(
            Objective(
                campaign_id=campaign_id,
                echelon=echelon,
                target=target,
                set_at=now,
                set_by=by,
                note=note,
            )
        )
    return len(targets)


# The header names accepted for each column (French Excel users write them in French).
_HEADERS = ({"echelon", "échelon"}, {"objective", "objectif"})


def _integer(text: str) -> int | None:
    """« 1 200 », « 1200 », « 1200,0 » or « 1200.0 » → 1200; anything else (12,5; x) → None."""
    text = text.replace("\u202f", "").replace("\u00a0", "").replace(" ", "")
    whole, sep, frac = text.replace(",", ".").partition(".")
    if not (whole.isascii() and whole.isdigit()) or (
        sep and not (frac.isdigit() and not frac.strip("0"))
    ):
        return None
    return int(whole)


def _lines(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The reader's lines; a line it cannot read (a cell past its size limit) is an error."""
    n = 1
    while True:
        try:
            line = next(reader)
        except StopIteration:
            return
        except csv.Error:
            raise ObjectiveError(
                f"ligne {n} : illisible (cellule trop longue ou mal formée)"
            ) from None
        n += 1
        yield line


def parse_objectives_csv(text: str, known: set[str]) -> dict[str, int]:
    """`echelon,objective` lines, or French Excel's `;`; every bad line reported, none applied.

    The separator is the header's: `;` (French Excel, decimal comma) or `,`. A cell's value is
    never repeated in an error (a shifted line may put a NIR where an échelon should be).
    """
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    out: dict[str, int] = {}
    errors = []
    lines = _lines(reader)
    header = next(lines, None)
    names = [h.strip().lower() for h in (header or [])[:3]]
    if len(names) != 2 or not all(n in ok for n, ok in zip(names, _HEADERS, strict=True)):
        raise ObjectiveError(
            "ligne 1 : l'en-tête doit être 'echelon;objective' (ou 'echelon,objective')"
        )
    for n, line in enumerate(lines, start=2):
        if not line or not "".join(line).strip():
            continue
        if len(line) != 2:
            errors.append(f"ligne {n} : 2 colonnes attendues, {len(line)} trouvée(s)")
            continue
        echelon, value = line[0].strip(), _integer(line[1].strip())
        if echelon not in known:
            errors.append(f"ligne {n}, colonne echelon : échelon inconnu")
        elif value is None:
            errors.append(f"ligne {n}, colonne objective : n'est pas un nombre entier positif")
        elif value > MAX_OBJECTIVE:
            errors.append(f"ligne {n}, colonne objective : {_MAX_TEXT}")
        elif echelon in out:
            errors.append(f"ligne {n}, colonne echelon : échelon {echelon} donné deux fois")
        else:
            out[echelon] = value
    if errors:
        raise ObjectiveError("; ".join(errors))
    return out
