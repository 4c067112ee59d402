"""Returned mail (NPAI): checked whole, applied once, every bad line named."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import func, select
from typer.testing import CliRunner

from campaigns.db import get_engine, session_scope
from campaigns.dispatch import Adapters, dispatch
from campaigns.models import Action, AuditEvent, MemberEvent, Person, ProviderEvent
from campaigns.returns import ReturnsFileError, import_returns, parse_returns
from campaigns.simulator import at
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import LocalMailbox
from console.cli import app
from tests.test_dispatch import ANCHOR, C, setup

NOW = at(ANCHOR + timedelta(days=10), 9)


def sent_letters(engine: Engine, tmp: Path, n: int = 10) -> list[str]:
    """Letters printed at renewal for n people without an ameli account; their keys."""
    setup(engine, n, ANCHOR, telephone=None, compte_ameli=False)
    rep = dispatch(
        engine=engine,
        campaign=C,
        channel="letter",
        adapters=Adapters(
            mailbox=LocalMailbox(tmp), email=LocalEmail(tmp), letters=LocalLetters(tmp)
        ),
        today=ANCHOR,
        now=at(ANCHOR, 8),
    )
    assert rep["sent"] >= 4
    with session_scope(engine) as s:
        return [
            a.key
            for a in s.exec(
                select(Action).where(Action.channel == "letter", Action.state == "sent")
            )
        ]


def csv_bytes(*rows: str, header: str = "key,returned_on,reason") -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def count(engine: Engine, model: type) -> int:
    with session_scope(engine) as s:
        return int(s.exec(select(func.count()).select_from(model)).one())


def test_a_good_file_is_applied_once(engine: Engine, tmp_path: Path) -> None:
    keys = sent_letters(engine, tmp_path)
    day = (ANCHOR + timedelta(days=5)).isoformat()
    data = csv_bytes(
        f"{keys[0]},{day},NPAI", f"{keys[1]},{day},refused", f"{keys[2]},{day},deceased"
    )
    with session_scope(engine) as s:
        rep = import_returns(session=s, data=data, name="returns.csv", actor="alice", now=NOW)
    assert (rep.lines, rep.applied, rep.already_imported, rep.addresses_invalidated) == (3, 3, 0, 3)
    assert rep.by_reason == {"NPAI": 1, "deceased": 1, "refused": 1}
    with session_scope(engine) as s:
        by_key = {a.key: a for a in s.exec(select(Action).where(Action.channel == "letter"))}
        first = by_key[keys[0]]
        assert (first.state, first.error) == ("sent", "returned: NPAI")
        assert by_key[keys[2]].error == "returned: deceased"
        assert by_key[keys[3]].error is None
        people = {p.id: p for p in s.exec(select(Person))}
        assert [people[by_key[k].person_id].address_invalid for k in keys[:4]] == [
            True,
            True,
            True,
            False,
        ]
        # A letter coming back does not make anyone deceased.
        assert people[by_key[keys[2]].person_id].deceased_on is None
        ev = s.exec(select(MemberEvent).where(MemberEvent.member_id == first.member_id)).all()
        returned = [e for e in ev if e.kind == "letter_returned"]
        assert len(returned) == 1 and returned[0].detail["reason"] == "NPAI"
        assert returned[0].on == ANCHOR + timedelta(days=5)
        audit = s.exec(select(AuditEvent).where(AuditEvent.action == "letters.returns_imported"))
        [a] = list(audit)
        assert a.actor == "alice" and a.detail["applied"] == 3
    before = (count(engine, ProviderEvent), count(engine, MemberEvent))
    with session_scope(engine) as s:
        again = import_returns(session=s, data=data, name="returns.csv", actor="alice", now=NOW)
    assert (again.applied, again.already_imported, again.addresses_invalidated) == (0, 3, 0)
    assert (count(engine, ProviderEvent), count(engine, MemberEvent)) == before


def test_a_bad_file_names_every_bad_line_and_applies_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    keys = sent_letters(engine, tmp_path)
    data = csv_bytes(
        f"{keys[0]},2026-06-20,NPAI",  # good, but not applied either
        "sophia-ald8:999999:letter:1,2026-06-20,NPAI",
        f"{keys[1]},20/06/2026,NPAI",
        f"{keys[2]},2026-06-20,moved",
        f"{keys[3]},2026-06-20",
        f"{keys[0]},2026-06-21,other",
    )
    with session_scope(engine) as s, pytest.raises(ReturnsFileError) as e:
        import_returns(session=s, data=data, name="r.csv", actor="bob", now=NOW)
    assert e.value.problems == [
        "r.csv, ligne 3, colonne 1 : clé inconnue : aucune lettre du registre ne porte cette clé",
        "r.csv, ligne 4, colonne 2 : n'est pas une date (AAAA-MM-JJ)",
        "r.csv, ligne 5, colonne 3 : motif inconnu (l'un de NPAI, refused, deceased, other)",
        "r.csv, ligne 6, colonne 3 : 3 colonnes attendues, 2 trouvée(s)",
        "r.csv, ligne 7, colonne 1 : clé déjà présente ligne 2",
    ]
    late = csv_bytes(f"{keys[1]},2026-06-01,NPAI", f"{keys[2]},2027-01-01,NPAI")
    with session_scope(engine) as s, pytest.raises(ReturnsFileError) as e:
        import_returns(session=s, data=late, name="r.csv", actor="bob", now=NOW)
    assert e.value.problems == [
        f"r.csv, ligne 2, colonne 2 : retour le 2026-06-01, avant l'envoi ({ANCHOR})",
        "r.csv, ligne 3, colonne 2 : retour le 2027-01-01, une date future",
    ]
    assert count(engine, ProviderEvent) == 0
    with session_scope(engine) as s:
        assert not any(p.address_invalid for p in s.exec(select(Person)))
        assert all(a.error is None for a in s.exec(select(Action)))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            b"",
            "f.csv, ligne 1, colonne 1 : fichier vide (en-tête attendu : key,returned_on,reason)",
        ),
        (
            b"key;returned_on;reason\nk;2026-06-20;NPAI\n",
            "f.csv, ligne 1, colonne 1 : séparateur ';' : les colonnes sont séparées par ','",
        ),
        (
            b"key,returned_on\nk,2026-06-20\n",
            "f.csv, ligne 1, colonne 3 : colonne reason manquante "
            "(attendu : key,returned_on,reason)",
        ),
        (
            b"key,returned_on,reason,extra\n",
            "f.csv, ligne 1, colonne 4 : colonne inconnue (attendu : key,returned_on,reason)",
        ),
        (
            b"key,returned_on,reason\nk,2026-06-20,NPAI\xe9\n",
            "f.csv, ligne 2, colonne 18 : pas du texte UTF-8",
        ),
    ],
)
def test_file_shape_problems(data: bytes, problem: str) -> None:
    with pytest.raises(ReturnsFileError) as e:
        parse_returns(data, name="f.csv")
    assert problem in e.value.problems


def test_header_only_and_lenient_reason_case() -> None:
    assert parse_returns(b"key,returned_on,reason\n", name="f") == []
    [r] = parse_returns(b"\xef\xbb\xbfreason,key,returned_on\r\nnpai,k1,2026-06-20\r\n", name="f")
    assert (r.key, r.reason, r.returned_on, r.line) == ("k1", "NPAI", date(2026, 6, 20), 2)


def test_cli_exit_codes(platform: Path, tmp_path: Path) -> None:
    engine = get_engine()
    keys = sent_letters(engine, tmp_path)
    good = tmp_path / "returns.csv"
    good.write_bytes(csv_bytes(f"{keys[0]},2026-06-20,NPAI", f"{keys[1]},2026-06-22,other"))
    r = CliRunner().invoke(app, ["letters", "returns", str(good)])
    assert r.exit_code == 0, r.output
    assert "2 lettre(s) retournée(s) : 2 importée(s) (NPAI 1, other 1), 0 déjà" in r.output
    r = CliRunner().invoke(app, ["letters", "returns", str(good)])
    assert r.exit_code == 0 and "0 importée(s) (aucune), 2 déjà importée(s)" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes(f"{keys[2]},2026-06-20,NPAI", f"{keys[3]},tomorrow,NPAI"))
    r = CliRunner().invoke(app, ["letters", "returns", str(bad)])
    assert r.exit_code == 2
    assert f"{bad}, ligne 3, colonne 2 : n'est pas une date (AAAA-MM-JJ)" in r.output
    assert "rien n'est importé" in r.output
    r = CliRunner().invoke(app, ["letters", "returns", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "lecture impossible" in r.output
    with session_scope(engine) as s:
        key2 = s.exec(select(Action).where(Action.key == keys[2])).one()
        assert key2.error is None
