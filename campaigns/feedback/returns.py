"""Returned mail from the print house: the letter came back, so the address is no good.

The file (CSV, UTF-8, header `key,returned_on,reason`) names each letter by the outbox key
printed in the batch manifest. The whole file is checked first and applied in one
transaction only if every line is good; importing it again changes nothing. A problem names
the line and column, never the cell's value (a misplaced cell may hold a NIR or a phone).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlmodel import Session, col, select

from campaigns.clock import paris_today, utcnow
from campaigns.ledger.audit import record
from campaigns.ledger.models import SUCCESS_STATES, Action, MemberEvent, Person, ProviderEvent
from targeting.identifiers import KIND_WORDS, kind_of

COLUMNS = ("key", "returned_on", "reason")
# The print house's reasons; NPAI: "n'habite pas à l'adresse indiquée".
REASONS = {
    "npai": "NPAI",
    "refused": "refused",
    "deceased": "deceased",
    "other": "other",
}
PROVIDER = "print"
_CHUNK = 500


@dataclass(frozen=True)
class Return:
    """One returned letter, as read from line `line` of the file."""

    line: int
    key: str
    returned_on: date
    reason: str


@dataclass
class ReturnsReport:
    """What an import did."""

    lines: int = 0
    applied: int = 0
    already_imported: int = 0
    addresses_invalidated: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class ReturnsFileError(Exception):
    """A returns file with bad lines: every problem, as `FILE, ligne N, colonne C : pourquoi`."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class _Problems:
    def __init__(self, name: str) -> None:
        self.name, self.found = name, list[tuple[int, int, str]]()

    def add(self, line: int, column: int, why: str) -> None:
        self.found.append((line, column, why))

    @property
    def items(self) -> list[str]:
        """In file order, so a user fixes them top to bottom."""
        return [
            f"{self.name}, ligne {line}, colonne {c} : {why}"
            for line, c, why in sorted(self.found, key=lambda x: (x[0], x[1]))
        ]


def _decode(data: bytes, bad: _Problems) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        line = before.count(b"\n") + 1
        column = len(before.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
        bad.add(line, column, "pas du texte UTF-8")
        return None


def _header(row: list[str], bad: _Problems) -> dict[str, int] | None:
    names = [c.strip().lower() for c in row]
    if len(names) == 1:
        for sep, label in ((";", "';'"), ("\t", "a tab"), ("|", "'|'")):
            if sep in names[0]:
                bad.add(1, 1, f"séparateur {label} : les colonnes sont séparées par ','")
                return None
    where = {}
    for i, n in enumerate(names, start=1):
        if n not in COLUMNS:
            bad.add(1, i, f"colonne inconnue (attendu : {','.join(COLUMNS)})")
        elif n in where:
            bad.add(1, i, f"colonne {n} en double")
        else:
            where[n] = i - 1
    for n in COLUMNS:
        if n not in where:
            bad.add(1, len(names) + 1, f"colonne {n} manquante (attendu : {','.join(COLUMNS)})")
    return where if len(where) == len(COLUMNS) and len(names) == len(COLUMNS) else None


def parse_returns(data: bytes, *, name: str) -> list[Return]:
    """The returns of a file, or ReturnsFileError listing every bad line (not the database)."""
    out, bad = _parse(data, name)
    if bad.items:
        raise ReturnsFileError(bad.items)
    return out


def _parse(data: bytes, name: str) -> tuple[list[Return], _Problems]:
    """The good lines and the problems of the others; raises at once if the shape is wrong."""
    bad = _Problems(name)
    text = _decode(data, bad)
    if text is None:
        raise ReturnsFileError(bad.items)
    if not text.strip():
        bad.add(1, 1, f"fichier vide (en-tête attendu : {','.join(COLUMNS)})")
        raise ReturnsFileError(bad.items)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out: list[Return] = []
    try:
        where = _header(next(reader), bad)
        if where is None:
            raise ReturnsFileError(bad.items)
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(COLUMNS):
                col_ = min(len(row), len(COLUMNS)) + 1
                bad.add(line, col_, f"{len(COLUMNS)} colonnes attendues, {len(row)} trouvée(s)")
                continue
            checked = _line(row, line, where, seen, bad)
            if checked is not None:
                out.append(checked)
    except csv.Error as e:
        bad.add(reader.line_num, 1, f"pas du CSV : {e}")
    return out, bad


def _line(
    row: list[str], line: int, where: dict[str, int], seen: dict[str, int], bad: _Problems
) -> Return | None:
    """One line of the right width checked field by field: its return, or None (problems noted)."""
    ok = True
    key = row[where["key"]].strip()
    kind = kind_of(key)
    if not key:
        bad.add(line, where["key"] + 1, "clé vide")
        ok = False
    elif kind is not None:
        bad.add(line, where["key"] + 1, f"{KIND_WORDS[kind]}, pas une clé de lettre")
        ok = False
    elif key in seen:
        bad.add(line, where["key"] + 1, f"clé déjà présente ligne {seen[key]}")
        ok = False
    else:
        seen[key] = line
    raw_day = row[where["returned_on"]].strip()
    try:
        day = date.fromisoformat(raw_day)
        if len(raw_day) != 10:
            raise ValueError(raw_day)
    except ValueError:
        bad.add(line, where["returned_on"] + 1, "n'est pas une date (AAAA-MM-JJ)")
        ok = False
    raw_reason = row[where["reason"]].strip()
    reason = REASONS.get(raw_reason.lower())
    if reason is None:
        bad.add(
            line,
            where["reason"] + 1,
            f"motif inconnu (l'un de {', '.join(REASONS.values())})",
        )
        ok = False
    return Return(line, key, day, reason) if ok else None  # type: ignore[arg-type]


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def import_returns(
    *, session: Session, data: bytes, name: str, actor: str, now: datetime | None = None
) -> ReturnsReport:
    """Check a returns file against the ledger, then apply it all (or nothing, with every why)."""
    now = now or utcnow()
    returns, bad = _parse(data, name)
    keys = [r.key for r in returns]
    actions: dict[str, Action] = {}
    done: set[str] = set()
    for chunk in _chunks(keys):
        actions.update(
            (a.key, a) for a in session.exec(select(Action).where(col(Action.key).in_(chunk)))
        )
        ids = [f"return:{k}" for k in chunk]
        done.update(
            e.removeprefix("return:")
            for e in session.exec(
                select(ProviderEvent.event_id).where(
                    ProviderEvent.provider == PROVIDER, col(ProviderEvent.event_id).in_(ids)
                )
            )
        )
    for r in returns:
        a = actions.get(r.key)
        if a is None:
            bad.add(r.line, 1, "clé inconnue : aucune lettre du registre ne porte cette clé")
        elif a.channel != "letter":
            bad.add(r.line, 1, f"cette clé est une action {a.channel}, pas une lettre")
        elif a.state not in SUCCESS_STATES:
            bad.add(r.line, 1, f"cette lettre n'a jamais été envoyée (elle est {a.state})")
        elif a.done_on is not None and r.returned_on < a.done_on:
            bad.add(r.line, 2, f"retour le {r.returned_on}, avant l'envoi ({a.done_on})")
        elif r.returned_on > paris_today(now):
            bad.add(r.line, 2, f"retour le {r.returned_on}, une date future")
    if bad.items:
        raise ReturnsFileError(bad.items)

    report = ReturnsReport(lines=len(returns))
    reasons: Counter[str] = Counter()
    for r in returns:
        if r.key in done:
            report.already_imported += 1
            continue
        a = actions[r.key]
        detail = {"reason": r.reason, "returned_on": r.returned_on.isoformat()}
        session.add(
            ProviderEvent(
                provider=PROVIDER,
                event_id=f"return:{r.key}",
                kind="letter_returned",
                ref=r.key,
                received_at=now,
                detail=detail,
            )
        )
        person = session.get(Person, a.person_id)
        # Even "deceased" only says the letter came back: the death itself comes from the
        # insurer's files, so the address is marked and the reason kept, nothing more.
        if person is not None and not person.address_invalid:
            person.address_invalid, person.updated_at = True, now
            report.addresses_invalidated += 1
        session.add(
            MemberEvent(
                member_id=a.member_id,
                on=r.returned_on,
                kind="letter_returned",
                detail={**detail, "text": f"letter returned ({r.reason}): address marked invalid"},
            )
        )
        a.error, a.updated_at = f"returned: {r.reason}", now
        reasons[r.reason] += 1
        report.applied += 1
    report.by_reason = dict(sorted(reasons.items()))
    record(
        session=session,
        actor=actor,
        action="letters.returns_imported",
        target=Path(name).name[:128],
        detail={
            "lines": report.lines,
            "applied": report.applied,
            "already_imported": report.already_imported,
            "by_reason": report.by_reason,
        },
        now=now,
    )
    session.flush()
    return report
