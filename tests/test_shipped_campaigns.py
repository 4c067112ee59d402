"""The shipped campaigns grippe-2026 and mt-ald: they load, their texts render, their targeting
gives realistic counts on a synthetic region, and the contact pressure holds across campaigns."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from pypdf import PdfReader
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from campaigns.app import stages
from campaigns.calls.queue import claim_next, record_outcome
from campaigns.cascade.dispatch import Adapters
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import Campaign, load_campaign
from campaigns.definition.rendering import render_message, sample_context
from campaigns.ledger.db import make_engine, session_scope
from campaigns.ledger.models import Action, Enrolment, Member, Person
from campaigns.ledger.registry import register_campaign
from channels.email import LocalEmail
from channels.letters import Letter, LocalLetters
from channels.mailbox import LocalMailbox
from channels.pdf_letters import PdfLetters
from console.cli import app
from console.demo.claims import CareAct, ClaimsWriter, drug_for
from console.demo.simulator import at
from targeting.synth import write_extract
from tests.factories import population

SHIPPED = ("grippe-2026", "mt-ald")
ADDRESS = ("MADAME CLAIRE MARTIN", "12 RUE DES LILAS", "91000 EVRY-COURCOURONNES")
LAUNCH = date(2026, 10, 14)
# Words an e-mail notice must never carry: it may be read by anyone (health data).
HEALTH_WORDS = re.compile(
    r"grippe|vaccin|ALD|affection|médecin|diab|maladie chronique|soin|santé", re.IGNORECASE
)


def campaign(cid: str) -> Campaign:
    return load_campaign(cid)


# --- the folders ----------------------------------------------------------------------------


@pytest.mark.parametrize("cid", SHIPPED)
def test_the_folder_loads_with_its_words(cid: str) -> None:
    d = campaign(cid).definition
    assert d.id == cid
    assert d.labels.anchor and d.labels.goal != "objectif atteint"  # its own words
    assert "ALD" not in d.labels.anchor or cid == "sophia-ald8"


@pytest.mark.parametrize("cid", SHIPPED)
def test_every_text_renders_for_every_step_and_notices_say_nothing_of_health(cid: str) -> None:
    c = campaign(cid)
    for step in c.definition.cascade:
        for priority in (True, False):
            ctx = sample_context(c.definition, step.id)
            ctx["member"]["priority"] = priority
            subject, body = render_message(c.env, step.template, ctx)
            assert "{{" not in body and "{%" not in body
            if step.channel in ("mailbox", "email"):
                assert subject, f"{cid}/{step.template}: no « Objet : » line"
            if step.notify:
                ctx = sample_context(c.definition, f"{step.id}_notice")
                subject, body = render_message(c.env, step.notify.template, ctx)
                assert not HEALTH_WORDS.search(subject + body), f"{cid}: notice says {subject}"


def test_the_flu_reminders_say_they_are_reminders() -> None:
    c = campaign("grippe-2026")
    first = render_message(c.env, "mailbox_message.md.j2", sample_context(c.definition, "mailbox"))
    again = render_message(
        c.env, "mailbox_message.md.j2", sample_context(c.definition, "mailbox_reminder")
    )
    assert "Rappel" in again[0] and "Rappel" not in first[0]


@pytest.mark.parametrize("cid", SHIPPED)
def test_the_letters_print_on_one_page(cid: str, tmp_path: Path) -> None:
    c = campaign(cid)
    letters = []
    for i, step in enumerate(s for s in c.definition.cascade if s.channel == "letter"):
        ctx = sample_context(c.definition, step.id)
        ctx["person"]["address_lines"] = list(ADDRESS)
        _, html = render_message(c.env, step.template, ctx)
        letters.append(Letter(key=f"{cid}:{i}:{step.id}:1", address_lines=ADDRESS, html=html))
    assert letters
    PdfLetters(tmp_path).print_batch("b", letters)
    pages = PdfReader(tmp_path / "letters" / "b.pdf").pages
    assert len(pages) == len(letters)  # one page each
    assert "Objet" in (pages[0].extract_text() or "")


# --- targeting on a synthetic region --------------------------------------------------------


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("region") / "x"
    write_extract(out=out, people=60_000, seed=11, as_of=LAUNCH)
    return out


def _target(region: Path, tmp: Path, cid: str, day: date) -> list[dict[str, str]]:
    out = tmp / f"{cid}.csv"
    res = CliRunner().invoke(
        app,
        [
            "target", cid, "--extract", str(region), "--as-of", day.isoformat(),
            "--output", str(out), "--include-ineligible",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with out.open(newline="") as f:
        return list(csv.DictReader(f))


def _shares(rows: list[dict[str, str]]) -> tuple[float, float, Counter[str]]:
    eligible = [r for r in rows if r["eligible"] == "true"]
    priority = [r for r in eligible if r["priority"] == "true"]
    return (
        len(eligible) / len(rows),
        len(priority) / max(1, len(eligible)),
        Counter(r["echelon"] for r in eligible),
    )


def test_grippe_targets_the_unvaccinated_65_plus_and_adults_in_ald(
    region: Path, tmp_path: Path
) -> None:
    rows = _target(region, tmp_path, "grippe-2026", LAUNCH)
    eligible, priority, per_echelon = _shares(rows)
    # ~20 % are 65+, ~3 % more are adults with an ALD 3/5/8/14; at the launch, only the
    # early shots (2 % of the vaccinated) are dispensed yet.
    assert 0.18 < eligible < 0.28
    # Priority: 80+ (~6 % of the insured) among the eligible.
    assert 0.2 < priority < 0.35
    assert set(per_echelon) == {"75", "77", "78", "91", "92", "93", "94", "95"}
    assert per_echelon["75"] > per_echelon["95"]  # Paris is the biggest échelon
    reasons = Counter(
        code for r in rows if r["eligible"] == "false" for code in r["reasons"].split(";") if code
    )
    assert reasons["care_found:vaccinated_this_season"] > 0


def test_grippe_later_in_the_season_half_the_65_plus_are_vaccinated(
    region: Path, tmp_path: Path
) -> None:
    # The extract's shots stop at its date: vaccinate people in it as the season would.
    con = duckdb.connect()
    ben = con.execute(
        f"SELECT ben_nir_psa, ben_rng_gem FROM '{region}/ir_ben_r.parquet' "
        "WHERE ben_nai_ann <> '1600' AND CAST(ben_nai_ann AS INT) <= 1950 ORDER BY 1 LIMIT 200"
    ).fetchall()
    copy = tmp_path / "x"
    copy.mkdir()
    for p in region.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    claims = ClaimsWriter(copy)
    cip = drug_for(copy, ["J07BB"])
    for psa, rng in ben:
        claims.add_care(CareAct(key=(psa, rng), day=date(2026, 11, 2), source="drug", code=cip))
    claims.flush()
    before = {(r["ben_nir_psa"]): r for r in _target(region, tmp_path, "grippe-2026", LAUNCH)}
    after = {
        (r["ben_nir_psa"]): r for r in _target(copy, tmp_path, "grippe-2026", date(2026, 11, 2))
    }
    vaccinated = [psa for psa, _ in ben if before[psa]["eligible"] == "true"]
    assert vaccinated
    for psa in vaccinated:
        assert after[psa]["eligible"] == "false"
        assert "care_found:vaccinated_this_season" in after[psa]["reasons"]


def test_mt_ald_targets_adults_in_ald_without_a_medecin_traitant(
    region: Path, tmp_path: Path
) -> None:
    rows = _target(region, tmp_path, "mt-ald", LAUNCH)
    eligible, priority, per_echelon = _shares(rows)
    # ~6 % of the people in ALD (about 15 % of adults) have no médecin traitant.
    assert 0.004 < eligible < 0.02
    # Without a médecin traitant, a GP visit is rarer: a good share has none in a year.
    assert 0.2 < priority < 0.8
    assert len(per_echelon) == 8
    reasons = Counter(
        code for r in rows if r["eligible"] == "false" for code in r["reasons"].split(";") if code
    )
    assert reasons["has_medecin_traitant"] > reasons["no_ald_in_force"] / 100


# --- contact pressure across campaigns ------------------------------------------------------

ANCHOR = date(2026, 12, 15)  # sophia's renewal date
MT_ENTRY = date(2026, 10, 15)  # a Thursday: mt-ald calls on its entry day
SOPHIA_CALL = date(2026, 10, 16)  # sophia's call window opens (anchor - 60)


def _both_campaigns(engine: Engine, n: int) -> None:
    sophia, mt = campaign("sophia-ald8").definition, campaign("mt-ald").definition
    targets, people = population(n, anchor=ANCHOR)
    targets["no_gp_visit"] = targets["priority"]
    with session_scope(engine) as s:
        for d, entry in ((sophia, ANCHOR - timedelta(days=80)), (mt, MT_ENTRY)):
            register_campaign(session=s, definition=d, launched=True)
            admit_targets(session=s, definition=d, targets=targets, people=people, today=entry)


def test_a_call_of_mt_ald_defers_the_sophia_call_and_why_says_so(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaigns.settings import get_settings

    sophia, mt = campaign("sophia-ald8").definition, campaign("mt-ald").definition
    _both_campaigns(engine, 6)
    tick(engine=engine, definition=sophia, today=MT_ENTRY)
    tick(engine=engine, definition=mt, today=MT_ENTRY)
    with session_scope(engine) as s:
        c = claim_next(session=s, adviser="x", now=at(MT_ENTRY, 10), definitions={mt.id: mt})
        assert c is not None
        record_outcome(
            session=s,
            action_id=c.action_id,
            adviser="x",
            outcome="refused",  # reached: counts as a call in the pressure window
            now=at(MT_ENTRY, 10),
            definition=mt,
        )
        reached = c.person_id
        m = s.exec(
            select(Member).where(Member.campaign_id == sophia.id, Member.person_id == reached)
        ).one()
        assert not m.holdout
        person = s.get(Person, reached)
        assert person is not None
        key = f"{person.ben_nir_psa}:{person.ben_rng_gem}"
    counts = tick(engine=engine, definition=sophia, today=SOPHIA_CALL)
    assert counts.get("deferred_call") == 1
    monkeypatch.setenv("RELANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["why", "--person", key, "--campaign", sophia.id])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    assert "reporté au 29/10/2026" in res.output
    assert "trop d'appels récents (toutes campagnes)" in res.output


# --- the demo -------------------------------------------------------------------------------


def test_the_demo_names_an_unknown_campaign(tmp_path: Path) -> None:
    d = tmp_path / "d"
    r = CliRunner().invoke(app, ["demo", "--campaign", "nope", "--data-dir", str(d)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "nope" in r.output and not d.exists()


@pytest.mark.parametrize(
    ("cid", "people", "days"), [("grippe-2026", 1500, 35), ("mt-ald", 6000, 40)]
)
def test_the_demo_plays_a_campaign_whose_goal_is_observed_in_the_data(
    cid: str, people: int, days: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "d"
    args = ["demo", "--campaign", cid, "--people", str(people), "--days", str(days)]
    r = CliRunner().invoke(app, [*args, "--data-dir", str(d)])
    assert r.exit_code == 0, r.output
    definition = campaign(cid).definition
    assert definition.labels.goal in " ".join(r.output.split())
    engine = make_engine(f"sqlite:///{d / 'relance.db'}")
    try:
        with Session(engine) as s:
            goals = s.exec(select(Enrolment).where(Enrolment.campaign_id == cid)).all()
            closed = s.exec(
                select(Member).where(Member.campaign_id == cid, Member.status == "goal")
            ).all()
            first_day = s.exec(
                select(col(Member.entered_on))
                .where(Member.campaign_id == cid)
                .order_by(col(Member.entered_on))
            ).first()
    finally:
        engine.dispose()
    # The simulated shots / declarations went into the extract; the observation found them.
    assert goals and {g.channel for g in goals} == {"observed"}
    assert len(closed) == len(goals)
    assert first_day == definition.dates.start  # nobody enters before the campaign starts


# --- the cascades, as the issue describes them ------------------------------------------------


def _admit(engine: Engine, cid: str, day: date, groups: list[dict[str, object]]) -> None:
    """Admit groups of 3 people (i % 3 == 0 is a priority), each with its own contact facts."""
    d = campaign(cid).definition
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, launched=True)
        for g, facts in enumerate(groups):
            targets, people = population(3, anchor=day, start=10 * g, **facts)
            targets["no_gp_visit"] = targets["priority"]
            admit_targets(session=s, definition=d, targets=targets, people=people, today=day)


def _steps(engine: Engine, cid: str) -> dict[str, dict[str, tuple[str, str | None, date]]]:
    """Per person key: step -> (state, reason, due day) of its first attempt."""
    out: dict[str, dict[str, tuple[str, str | None, date]]] = {}
    with session_scope(engine) as s:
        rows = s.exec(
            select(  # type: ignore[call-overload]  # five columns: past sqlmodel overloads
                Person.ben_nir_psa, Action.step, Action.state, Action.reason, Action.due_on
            )
            .join(Person, col(Person.id) == col(Action.person_id))
            .join(Member, col(Member.id) == col(Action.member_id))
            .where(Action.campaign_id == cid, Action.attempt == 1, col(Member.holdout).is_(False))
        ).all()
    for psa, step, state, reason, due in rows:
        out.setdefault(psa, {})[step] = (state, reason, due)
    return out


def test_grippe_mailbox_or_letter_at_launch_reminder_30_days_later_calls_from_december(
    engine: Engine,
) -> None:
    cid = "grippe-2026"
    _admit(engine, cid, LAUNCH, [{"compte_ameli": True}, {"compte_ameli": False}])
    for day in (LAUNCH, LAUNCH + timedelta(days=30), date(2026, 12, 1)):
        tick(engine=engine, definition=campaign(cid).definition, today=day)
    steps = _steps(engine, cid)
    assert steps, "every member in the holdout?"
    for psa, got in steps.items():
        i = int(psa[3:])
        if i < 10:  # a compte ameli: the mailbox, never the letter
            assert got["mailbox"][0] == "queued" and got["mailbox"][2] == LAUNCH
            assert got["mailbox_reminder"][2] == LAUNCH + timedelta(days=30)
            assert got["letter"][:2] == ("skipped", "has_compte_ameli")
        else:  # none: the letter, at the launch then 30 days later
            assert got["letter"][0] == "queued" and got["letter"][2] == LAUNCH
            assert got["letter_reminder"][2] == LAUNCH + timedelta(days=30)
            assert got["mailbox"][:2] == ("skipped", "no_compte_ameli")
        if i % 3 == 0:  # 80+: the PFS calls, not before 1 December
            assert got["call"][0] == "queued" and got["call"][2] == date(2026, 12, 1)
        else:
            assert got["call"][:2] == ("skipped", "not_priority")


def test_mt_ald_call_then_mailbox_unless_reached_then_letter_unless_read(
    engine: Engine, tmp_path: Path
) -> None:
    cid = "mt-ald"
    d = campaign(cid).definition
    entry = date(2026, 10, 5)  # a Monday
    _admit(engine, cid, entry, [{}])
    tick(engine=engine, definition=d, today=entry)
    with session_scope(engine) as s:
        c = claim_next(session=s, adviser="x", now=at(entry, 10), definitions={cid: d})
        assert c is not None
        record_outcome(
            session=s,
            action_id=c.action_id,
            adviser="x",
            outcome="will_enrol_online",
            now=at(entry, 10),
            definition=d,
        )
        reached = s.get(Person, c.person_id)
        assert reached is not None
    # The others are not reached: every attempt ends without an answer.
    for day in (entry + timedelta(days=n) for n in range(0, 22)):
        tick(engine=engine, definition=d, today=day)
        with session_scope(engine) as s:
            while c := claim_next(session=s, adviser="x", now=at(day, 11), definitions={cid: d}):
                record_outcome(
                    session=s,
                    action_id=c.action_id,
                    adviser="x",
                    outcome="no_answer",
                    now=at(day, 11),
                    definition=d,
                )
    steps = _steps(engine, cid)
    assert steps[reached.ben_nir_psa]["mailbox"][:2] == ("skipped", "reached_by_phone")
    others = [p for p in steps if p != reached.ben_nir_psa]
    assert others and all(steps[p]["mailbox"][2] == entry + timedelta(days=14) for p in others)
    # Day 14: the messages go out; one person reads theirs, the other does not.
    mailbox = LocalMailbox(tmp_path)
    adapters = Adapters(mailbox=mailbox, email=LocalEmail(tmp_path), letters=LocalLetters(tmp_path))
    day14 = entry + timedelta(days=14)
    tick(engine=engine, definition=d, today=day14)
    stages.dispatch_stage(
        engine=engine, campaign=campaign(cid), adapters=adapters, day=day14, channel="mailbox"
    )
    with session_scope(engine) as s:
        sent = s.exec(
            select(Person.ben_nir_psa, Action.provider_id)
            .join(Person, col(Person.id) == col(Action.person_id))
            .where(Action.campaign_id == cid, Action.step == "mailbox", Action.state == "sent")
            .order_by(col(Person.ben_nir_psa))
        ).all()
    assert len(sent) == len(others)
    reader, _ = sent[0]
    mailbox.mark_read(str(sent[0][1]))
    stages.mailbox_reads_stage(
        engine=engine, campaign=campaign(cid), gateway=mailbox, day=day14 + timedelta(days=2)
    )
    day35 = entry + timedelta(days=35)
    tick(engine=engine, definition=d, today=day35)
    steps = _steps(engine, cid)
    assert steps[reader]["letter"][:2] == ("skipped", "mailbox_read")
    for psa in others:
        if psa != reader:
            assert steps[psa]["letter"][0] == "queued" and steps[psa]["letter"][2] == day35
    # Reached by phone, no message: the letter still goes (its mailbox step was skipped).
    assert steps[reached.ben_nir_psa]["letter"][0] == "queued"


def test_a_flu_message_defers_the_mt_ald_message_under_the_contacts_limit(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three campaigns share one contact budget: with one contact a month, the flu campaign's
    mailbox message puts off the mt-ald message of the same person, and `why` says so."""
    from campaigns.settings import get_settings

    monkeypatch.setenv("RELANCE_PRESSURE_MAX_CONTACTS", "1")
    monkeypatch.setenv("RELANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        grippe, mt = campaign("grippe-2026"), campaign("mt-ald")
        entry = date(2026, 10, 5)
        _admit(engine, mt.id, entry, [{"telephone": None}])  # no call: the message will go
        _admit(engine, grippe.id, LAUNCH, [{"telephone": None}])
        adapters = Adapters(
            mailbox=LocalMailbox(tmp_path),
            email=LocalEmail(tmp_path),
            letters=LocalLetters(tmp_path),
        )
        tick(engine=engine, definition=grippe.definition, today=LAUNCH)
        sent = stages.dispatch_stage(
            engine=engine, campaign=grippe, adapters=adapters, day=LAUNCH, channel="mailbox"
        )
        assert sent["sent"] >= 1
        day14 = entry + timedelta(days=14)
        counts = tick(engine=engine, definition=mt.definition, today=day14)
        assert counts.get("deferred_mailbox", 0) >= 1
        flu = _steps(engine, grippe.id)
        deferred = [p for p, got in _steps(engine, mt.id).items() if "mailbox" not in got]
        both = [p for p in deferred if flu.get(p, {}).get("mailbox", ("",))[0] == "sent"]
        assert both
        res = CliRunner().invoke(app, ["why", "--person", f"{both[0]}:1", "--campaign", mt.id])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    until = (LAUNCH + timedelta(days=30)).strftime("%d/%m/%Y")
    assert (
        f"mailbox (mailbox) pas contacté pour l'instant, reporté au {until} : pressure_contacts"
        in out
    )
    assert "trop de contacts récents (toutes campagnes)" in out
