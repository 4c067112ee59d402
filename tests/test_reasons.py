"""One vocabulary: every reason code written has French words; one fact, one code."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import get_args

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.cascade.planner import MemberState, Skip, plan
from campaigns.definition import model
from campaigns.definition.reasons import (
    FAMILY_PATTERNS,
    LABELS,
    Reason,
    UnknownReason,
    reason_label,
)
from campaigns.definition.vocabulary import Channel
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, Member
from campaigns.ledger.vocabulary import ActionState
from campaigns.measurement.why import why
from campaigns.policy.calendar import add_working_days
from campaigns.policy.decision import Facts, decide
from tests.test_services import CALL_DAY, D, setup

ROOT = Path(__file__).resolve().parents[1]
# The packages that write reasons: the core (not its migrations) and the providers' adapters.
WRITERS = [
    p
    for folder in ("campaigns", "channels")
    for p in sorted((ROOT / folder).rglob("*.py"))
    if "migrations" not in p.parts and p.name != "reasons.py"
]
# Where a reason is written: these keywords, dict keys and attributes, and these positions.
_NAMES = {"reason", "reasons", "status_reason", "code"}
_POSITIONS = {"Skip": 2, "Exit": 1, "NewAction": 5, "Decision": 1}


def _literals(node: ast.AST, names: dict[str, list[ast.AST]] | None = None) -> list[str]:
    """The codes a value can be: a string, an f-string as a pattern (`outcome_{}`), or what
    a plain name was given in the module (`why = f"dropped: {x}"` then `a.reason = why`)."""
    if isinstance(node, ast.Name) and names is not None:
        return [x for v in names.get(node.id, []) for x in _literals(v)]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [
            "".join(
                v.value if isinstance(v, ast.Constant) else "{}"  # type: ignore[misc]
                for v in node.values
            )
        ]
    if isinstance(node, ast.IfExp):
        return _literals(node.body, names) + _literals(node.orelse, names)
    if isinstance(node, ast.BoolOp):
        return [x for v in node.values for x in _literals(v, names)]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [x for v in node.elts for x in _literals(v, names)]
    return []


def _written(tree: ast.AST) -> list[tuple[int, str]]:
    names: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            names.setdefault(node.targets[0].id, []).append(node.value)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        values: list[ast.AST] = []
        if isinstance(node, ast.Call):
            values += [k.value for k in node.keywords if k.arg in _NAMES]
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            at = _POSITIONS.get(name)
            if at is not None and len(node.args) > at:
                values.append(node.args[at])
            if name == "append" and getattr(node.func.value, "id", "") == "reasons":  # type: ignore[attr-defined]
                values += node.args
        elif isinstance(node, ast.Dict):
            values += [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value in _NAMES
            ]
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                slots = target.elts if isinstance(target, ast.Tuple) else [target]
                sources = (
                    node.value.elts
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [node.value]
                )
                for t, v in zip(slots, sources, strict=False):
                    if isinstance(t, ast.Attribute) and t.attr in _NAMES:
                        values.append(v)
        for value in values:
            out += [(node.lineno, code) for code in _literals(value, names)]  # type: ignore[attr-defined]
    return out


def _known(code: str) -> bool:
    if "{}" in code:
        return code in FAMILY_PATTERNS
    try:
        reason_label(code)
    except UnknownReason:
        return False
    return True


def test_every_reason_has_french_words() -> None:
    assert set(LABELS) == set(Reason)
    assert all(words.strip() and words != code for code, words in LABELS.items())


def test_an_unknown_code_has_no_words() -> None:
    with pytest.raises(UnknownReason):
        reason_label("xyz")
    with pytest.raises(UnknownReason):
        reason_label("member_xyz")


def test_every_code_the_code_base_writes_has_words() -> None:
    found: list[str] = []
    unknown: list[str] = []
    for path in WRITERS:
        for line, code in _written(ast.parse(path.read_text(), str(path))):
            found.append(code)
            if not _known(code):
                unknown.append(f"{path.relative_to(ROOT)}:{line}: {code!r}")
    assert not unknown, "reason codes without French words:\n" + "\n".join(unknown)
    # The scan sees the writers it should (it would pass vacuously if it saw nothing).
    assert {"outcome_{}", "member_{}", "dropped: {}", "invalid_address", "read_status"} <= set(
        found
    )


def test_the_scan_catches_a_code_without_words() -> None:
    tree = ast.parse('a.state, a.reason = "x", "no_postcode"\nSkip(s, c, f"gone_{why}")')
    assert [c for _, c in _written(tree) if not _known(c)] == ["no_postcode", "gone_{}"]


def test_the_planner_and_the_policy_give_a_missing_address_one_code() -> None:
    letter = next(s for s in D.cascade if s.channel == Channel.LETTER)
    assert "postal_address" in letter.requires
    anchor = date(2026, 6, 15)
    state = MemberState(
        anchor_date=anchor,
        entered_on=date(2026, 3, 1),
        departement="91",
        has_phone=True,
        has_compte_ameli=True,
        has_email=True,
        has_postal_address=False,
    )
    today = anchor + timedelta(days=letter.start_days)
    skipped = [s for s in plan(state, today, D, add_working_days).skips if s.step == letter.id]
    policy = decide(
        facts=Facts(departement="91", address_ok=False),
        channel=Channel.LETTER,
        now=datetime(2026, 6, 1, 10, tzinfo=UTC),
        pressure=None,
    )
    assert skipped == [Skip(letter.id, Channel.LETTER, Reason.NO_ADDRESS)]
    assert policy.reason == Reason.NO_ADDRESS == "no_address"


def test_why_gives_the_words_of_the_old_address_code(engine: Engine) -> None:
    setup(engine, 1)
    with session_scope(engine) as s:
        m = s.exec(select(Member)).one()
        now = datetime(2026, 4, 16, 10, tzinfo=UTC)
        s.add(
            Action(
                key="old-ledger",
                campaign_id=D.id,
                member_id=m.id or 0,
                person_id=m.person_id,
                step="letter",
                channel="letter",
                attempt=1,
                due_on=CALL_DAY,
                state="skipped",
                reason="no_valid_postal_address",  # what the planner wrote before
                created_at=now,
                updated_at=now,
            )
        )
    with session_scope(engine) as s:
        story = why(session=s, campaign_id=D.id, ben_nir_psa="PSA000000", ben_rng_gem=1)
    lines = [line for _, line in story.lines]
    assert (
        "letter n°1 (letter) non fait : no_valid_postal_address (pas d'adresse postale valide)"
        in lines
    )


def test_the_enums_store_the_same_words(engine: Engine) -> None:
    setup(engine, 1)
    with session_scope(engine) as s:
        m = s.exec(select(Member)).one()
        now = datetime(2026, 4, 16, 10, tzinfo=UTC)
        s.add(
            Action(
                key="enum",
                campaign_id=D.id,
                member_id=m.id or 0,
                person_id=m.person_id,
                step="call",
                channel=Channel.PHONE,
                attempt=1,
                due_on=CALL_DAY,
                state=ActionState.FAILED_FINAL,
                reason=Reason.NO_PHONE,
                created_at=now,
                updated_at=now,
            )
        )
    with session_scope(engine) as s:
        row = s.execute(text("SELECT channel, state, reason FROM action WHERE key = 'enum'")).one()
    assert tuple(row) == ("phone", "failed_final", "no_phone")


def test_the_definition_names_the_same_channels() -> None:
    assert set(get_args(model.Channel)) == {c.value for c in Channel}


def test_the_person_page_shows_reasons_in_words(engine: Engine, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from campaigns.ledger.accounts import create_user
    from campaigns.settings import Settings
    from console.web.app import create_app
    from tests.test_console import PW, login

    test_why_gives_the_words_of_the_old_address_code(engine)
    with session_scope(engine) as s:
        m = s.exec(select(Member)).one()
        m.status, m.status_reason = "exited", "outcome_objects"
        create_user(session=s, username="mgr", password=PW, role="campaign_manager")
        mid = m.id
    app = create_app(
        Settings(data_dir=tmp_path, secret_key="k" * 40, extract_dir=tmp_path / "none"),
        engine=engine,
    )
    client = TestClient(app)
    login(client, "mgr")
    page = client.get(f"/campaigns/{D.id}/members/{mid}").text
    assert "<td>pas d&#39;adresse postale valide</td>" in page
    assert "(issue de l&#39;appel : s&#39;oppose à être contacté)" in page


def test_why_tells_a_departure_in_words(engine: Engine) -> None:
    from campaigns.ledger.members import close_member

    setup(engine, 1)
    with session_scope(engine) as s:
        m = s.exec(select(Member)).one()
        close_member(
            session=s,
            member=m,
            status="exited",
            reason="outcome_objects",
            today=CALL_DAY,
            source="call",
            now=datetime(2026, 4, 16, 10, tzinfo=UTC),
        )
    with session_scope(engine) as s:
        story = why(session=s, campaign_id=D.id, ben_nir_psa="PSA000000", ben_rng_gem=1)
    lines = [line for _, line in story.lines]
    words = "outcome_objects (issue de l'appel : s'oppose à être contacté)"
    assert story.status == f"sortie ({words})"
    assert f"sortie (sortie) : {words}, source : call" in lines
