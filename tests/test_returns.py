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
        "r.csv, line 3, column 1: unknown key 'sophia-ald8:999999:letter:1': "
        "no such letter in the ledger",
        "r.csv, line 4, column 2: bad date '20/06/2026' (YYYY-MM-DD)",
        "r.csv, line 5, column 3: unknown reason 'moved' (one of NPAI, refused, deceased, other)",
        "r.csv, line 6, column 3: expected 3 columns, found 2",
        f"r.csv, line 7, column 1: key '{keys[0]}' already on line 2",
    ]
    late = csv_bytes(f"{keys[1]},2026-06-01,NPAI", f"{keys[2]},2027-01-01,NPAI")
    with session_scope(engine) as s, pytest.raises(ReturnsFileError) as e:
        import_returns(session=s, data=late, name="r.csv", actor="bob", now=NOW)
    assert e.value.problems == [
        f"r.csv, line 2, column 2: returned on 2026-06-01 before it was sent ({ANCHOR})",
        "r.csv, line 3, column 2: returned on 2027-01-01, a date in the future",
    ]
    assert count(engine, ProviderEvent) == 0
    with session_scope(engine) as s:
        assert not any(p.address_invalid for p in s.exec(select(Person)))
        assert all(a.error is None for a in s.exec(select(Action)))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "f.csv, line 1, column 1: empty file (expected the header key,returned_on,reason)"),
        (
            b"key;returned_on;reason\nk;2026-06-20;NPAI\n",
            "f.csv, line 1, column 1: wrong delimiter ';': columns are separated by ','",
        ),
        (
            b"key,returned_on\nk,2026-06-20\n",
            "f.csv, line 1, column 3: missing column 'reason' (expected key,returned_on,reason)",
        ),
        (
            b"key,returned_on,reason,extra\n",
            "f.csv, line 1, column 4: unknown column 'extra' (expected key,returned_on,reason)",
        ),
        (
            b"key,returned_on,reason\nk,2026-06-20,NPAI\xe9\n",
            "f.csv, line 2, column 18: not UTF-8 text",
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
    assert "2 returned letters: 2 imported (NPAI 1, other 1), 0 already imported" in r.output
    r = CliRunner().invoke(app, ["letters", "returns", str(good)])
    assert r.exit_code == 0 and "0 imported (none), 2 already imported" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes(f"{keys[2]},2026-06-20,NPAI", f"{keys[3]},tomorrow,NPAI"))
    r = CliRunner().invoke(app, ["letters", "returns", str(bad)])
    assert r.exit_code == 2
    assert f"{bad}, line 3, column 2: bad date 'tomorrow' (YYYY-MM-DD)" in r.output
    assert "nothing imported" in r.output
    r = CliRunner().invoke(app, ["letters", "returns", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "cannot read" in r.output
    with session_scope(engine) as s:
        key2 = s.exec(select(Action).where(Action.key == keys[2])).one()
        assert key2.error is None
