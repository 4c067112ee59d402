"""Goals (enrolment, care act, registry fact), objectives (count, rate), credited per campaign."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.app import stages
from campaigns.cascade.enrolments import ingest_enrolment_file
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import Campaign, campaign_by_id
from campaigns.definition.goals import CareActGoal, EnrolmentGoal, Objectives, RegistryFactGoal
from campaigns.definition.model import (
    DEFINITIONS_DIR,
    CampaignDefinition,
    DefinitionError,
    parse_definition,
)
from campaigns.ledger.db import make_engine, session_scope, upgrade
from campaigns.ledger.goals import goal_reached
from campaigns.ledger.models import Action, Enrolment, Member, MemberEvent, Person
from campaigns.ledger.registry import register_campaign
from campaigns.measurement.effect_report import effect_report
from campaigns.measurement.report import echelon_report, total_row
from campaigns.measurement.why import why
from campaigns.policy.decision import load_facts
from console.demo.simulator import at
from tests.factories import population
from tests.test_encryption import _migrate, empty_url  # noqa: F401 (a fixture)

SOPHIA = DEFINITIONS_DIR / "sophia_ald8"
D = parse_definition(SOPHIA / "campaign.yaml")
RAW = yaml.safe_load((SOPHIA / "campaign.yaml").read_text(encoding="utf-8"))
ANCHOR = date(2026, 6, 15)
ENTRY = ANCHOR - timedelta(days=80)
TODAY = ENTRY + timedelta(days=20)


# --- the goal and objectives of a campaign.yaml ------------------------------------------------


def _definition(tmp_path: Path, **blocks: str) -> CampaignDefinition:
    raw = dict(RAW)
    for key, block in blocks.items():
        raw[key] = yaml.safe_load(block)
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return parse_definition(path)


def test_todays_goal_and_objectives_keep_their_meaning() -> None:
    assert D.goal == EnrolmentGoal(programme="sophia", attribution_window_days=60)
    assert D.goal.programme_table == "sophia_adhesions" and D.goal.date_column == "date_adhesion"
    assert D.objectives.kind == "count" and D.objectives.counts()["75"] == 980
    assert sorted(D.objectives) == ["75", "77", "78", "91", "92", "93", "94", "95"]
    assert D.objectives.target("91", eligible=10_000) == 590


def test_the_three_kinds_of_goal(tmp_path: Path) -> None:
    d = _definition(
        tmp_path,
        goal="""
kind: enrolment
programme: sophia
table: sophia_inscriptions
date_column: date_inscription
attribution_window_days: 30
""",
    )
    assert isinstance(d.goal, EnrolmentGoal)
    assert (d.goal.programme_table, d.goal.date_column) == (
        "sophia_inscriptions",
        "date_inscription",
    )
    d = _definition(
        tmp_path, goal="{kind: care_act, source: drug, codes: [J07BB], attribution_window_days: 90}"
    )
    assert d.goal == CareActGoal(
        kind="care_act", source="drug", codes=["J07BB"], attribution_window_days=90
    )
    assert d.goal.observed and d.goal.programme == "care_act"
    d = _definition(tmp_path, goal="{kind: registry_fact, fact: medecin_traitant_declared}")
    assert isinstance(d.goal, RegistryFactGoal) and d.goal.attribution_window_days == 60


@pytest.mark.parametrize(
    ("goal", "why"),
    [
        (
            "{kind: care_act, source: drug, codes: []}",
            "goal.codes: List should have at least 1 item",
        ),
        ("{kind: care_act, source: pharmacy, codes: [J07BB]}", "goal.source"),
        ("{kind: care_act, codes: [J07BB]}", "clé obligatoire manquante"),
        ("{kind: registry_fact, fact: vaccinated}", "goal.fact"),
        ("{kind: lottery}", "goal"),
        ("{kind: care_act, source: drug, codes: [J07BB], programme: sophia}", "clé inconnue"),
        ("{programme: sophia, attribution_window_days: 0}", "greater than 0"),
    ],
)
def test_a_bad_goal_is_refused_naming_where(tmp_path: Path, goal: str, why: str) -> None:
    with pytest.raises(DefinitionError) as e:
        _definition(tmp_path, goal=goal)
    assert why in str(e.value)


def test_objectives_as_a_rate_with_overrides(tmp_path: Path) -> None:
    d = _definition(tmp_path, objectives='{kind: rate, default: 0.75, echelons: {"75": 0.8}}')
    o = d.objectives
    assert (o.rate("75"), o.rate("91")) == (0.8, 0.75)
    assert o.target("75", eligible=101) == 81 and o.target("91", eligible=4) == 3
    assert o.counts() == {} and "91" in o and "99" not in o
    counts = _definition(tmp_path, objectives="{kind: count, default: 100, echelons: {'75': 5}}")
    assert counts.objectives.counts()["75"] == 5 and counts.objectives.counts()["93"] == 100


@pytest.mark.parametrize(
    ("objectives", "why"),
    [
        ("{kind: rate, default: 1.5}", "between 0 and 1"),
        ("{kind: rate, echelons: {'75': -0.1}}", ">= 0"),
        ("{kind: count, default: 2.5}", "whole number"),
        ("{'75': -1}", ">= 0"),
        ("{kind: share, default: 0.5}", "objectives.kind"),
    ],
)
def test_bad_objectives_are_refused(tmp_path: Path, objectives: str, why: str) -> None:
    with pytest.raises(DefinitionError) as e:
        _definition(tmp_path, objectives=objectives)
    assert why in str(e.value)


def test_objectives_read_from_a_mapping_without_a_kind() -> None:
    o = Objectives.model_validate({"75": 3, "91": 4})
    assert o.kind == "count" and dict(o.items()) == {"75": 3, "91": 4} and o["91"] == 4


# --- goal rows per campaign --------------------------------------------------------------------


X = D.model_copy(update={"id": "sophia-x"})
Y = D.model_copy(update={"id": "sophia-y"})


def _admit(engine: Engine, d: CampaignDefinition, n: int = 4) -> None:
    targets, people = population(n, anchor=ANCHOR)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, launched=True)
        admit_targets(session=s, definition=d, targets=targets, people=people, today=ENTRY)


def _statuses(engine: Engine, campaign_id: str) -> dict[str, str]:
    with session_scope(engine) as s:
        rows = s.exec(
            select(Person.ben_nir_psa, Member.status)
            .join(Member, col(Member.person_id) == col(Person.id))
            .where(Member.campaign_id == campaign_id, col(Member.holdout).is_(False))
        ).all()
    return dict(rows)


def test_a_feed_row_is_credited_to_its_campaign_only(engine: Engine, tmp_path: Path) -> None:
    _admit(engine, X)
    _admit(engine, Y)
    x_members = _statuses(engine, X.id)
    key = sorted(x_members)[0]
    assert key in _statuses(engine, Y.id)
    feed = tmp_path / "x.csv"
    # The feed of a new campaign: key and date, no channel.
    feed.write_text(f"ben_nir_psa,ben_rng_gem,date\n{key},1,{TODAY.isoformat()}\n")
    with session_scope(engine) as s:
        rep = ingest_enrolment_file(
            session=s, path=feed, campaign_id=X.id, programme="sophia", now=at(TODAY, 9)
        )
    assert (rep.rows, rep.new, rep.members_closed, rep.errors) == (1, 1, 1, [])
    assert _statuses(engine, X.id)[key] == "goal"
    assert _statuses(engine, Y.id)[key] == "active"
    with session_scope(engine) as s:
        row = s.exec(select(Enrolment)).one()
        assert (row.campaign_id, row.channel) == (X.id, "unknown")
        x_rows = echelon_report(session=s, campaign_id=X.id)
        y_rows = echelon_report(session=s, campaign_id=Y.id)
    assert total_row(x_rows).enrolled == 1 and total_row(y_rows).enrolled == 0
    # The same person in Y's feed is Y's goal row: both stand, one each.
    with session_scope(engine) as s:
        again = ingest_enrolment_file(
            session=s, path=feed, campaign_id=Y.id, programme="sophia", now=at(TODAY, 10)
        )
        assert again.new == 1 and again.members_closed == 1
        repeat = ingest_enrolment_file(
            session=s, path=feed, campaign_id=Y.id, programme="sophia", now=at(TODAY, 11)
        )
        assert repeat.new == 0 and repeat.already_known == 1
        assert len(s.exec(select(Enrolment)).all()) == 2


def test_a_feed_without_the_date_column_is_refused_naming_it(
    engine: Engine, tmp_path: Path
) -> None:
    feed = tmp_path / "x.csv"
    feed.write_text("ben_nir_psa,ben_rng_gem,jour\nPSA000001,1,2026-04-01\n")
    with session_scope(engine) as s:
        rep = ingest_enrolment_file(
            session=s,
            path=feed,
            campaign_id=X.id,
            programme="sophia",
            date_column="date_inscription",
        )
    assert rep.new == 0
    assert rep.errors == [
        "x.csv, ligne 1 : colonnes manquantes date_inscription ou date_adhesion ou date"
    ]


# --- goals observed in the extract -------------------------------------------------------------


class FakeObserver:
    """Stands for targeting.goals.observe_goal: answers from a table of (key, date)."""

    def __init__(self, found: dict[str, date]) -> None:
        self.found = found
        self.asked: pd.DataFrame | None = None
        self.goal: Any = None

    def __call__(self, *, extract: Path, goal: Any, since: pd.DataFrame) -> pd.DataFrame:
        self.asked, self.goal = since, goal
        rows = [(k, 1, on) for k, on in self.found.items()]
        return pd.DataFrame(rows, columns=["ben_nir_psa", "ben_rng_gem", "observed_on"])


MT = D.model_copy(
    update={
        "id": "mt-test",
        "goal": RegistryFactGoal(kind="registry_fact", fact="medecin_traitant_declared"),
    }
)
FLU = D.model_copy(
    update={
        "id": "flu-test",
        "goal": CareActGoal(kind="care_act", source="drug", codes=["J07BB"]),
    }
)


def _contact(engine: Engine, d: CampaignDefinition, key: str, on: date) -> None:
    """A delivered mailbox message for the member with this key, on that day."""
    with session_scope(engine) as s:
        m, p = s.exec(
            select(Member, Person)
            .join(Person, col(Person.id) == col(Member.person_id))
            .where(Member.campaign_id == d.id, Person.ben_nir_psa == key)
        ).one()
        now = at(on, 9)
        s.add(
            Action(
                key=f"{d.id}/{key}/mailbox/1",
                campaign_id=d.id,
                member_id=m.id or 0,
                person_id=p.id or 0,
                step="mailbox",
                channel="mailbox",
                attempt=1,
                due_on=on,
                state="delivered",
                done_on=on,
                created_at=now,
                updated_at=now,
            )
        )


def _campaign(d: CampaignDefinition) -> Campaign:
    return dataclasses.replace(campaign_by_id(D.id), definition=d)


def _observe(engine: Engine, d: CampaignDefinition, fake: FakeObserver, day: date) -> Any:
    return stages.goal_observation_stage(
        engine=engine,
        campaign=_campaign(d),
        extract=Path("unused"),
        day=day,
        observe=fake,
        now=at(day, 7),
    )


def test_a_registry_fact_on_or_after_entry_closes_the_member(engine: Engine) -> None:
    _admit(engine, MT, 6)
    _admit(engine, X, 6)
    active = sorted(_statuses(engine, MT.id))
    first, second, third = active[:3]
    fake = FakeObserver(
        {
            first: ENTRY,  # the entry day counts
            second: ENTRY - timedelta(days=1),  # before entry: not this campaign's doing
            third: TODAY + timedelta(days=5),  # after the day observed: never
        }
    )
    counts = _observe(engine, MT, fake, TODAY)
    assert fake.asked is not None and set(fake.asked["since"]) == {ENTRY}
    assert fake.goal == MT.goal
    assert counts["observed"] == 1 and counts["new"] == 1 and counts["members_closed"] == 1
    st = _statuses(engine, MT.id)
    assert (st[first], st[second], st[third]) == ("goal", "active", "active")
    assert _statuses(engine, X.id)[first] == "active"  # another campaign's member: untouched
    with session_scope(engine) as s:
        row = s.exec(select(Enrolment)).one()
        assert (row.campaign_id, row.programme, row.enrolled_on) == (MT.id, "registry_fact", ENTRY)
        left = s.exec(select(MemberEvent).where(MemberEvent.kind == "left")).one()
        assert left.detail["reason"] == "goal_observed"
        assert left.detail["source"] == "goal_observation"
        story = why(session=s, campaign_id=MT.id, ben_nir_psa=first, ben_rng_gem=1)
        assert (ENTRY, "objectif constaté dans l'extrait (registry_fact)") in story.lines
    # Observed again the next day: nothing new, nobody closed twice.
    again = _observe(engine, MT, fake, TODAY + timedelta(days=1))
    assert again["new"] == 0 and again["members_closed"] == 0


def test_a_care_act_counts_from_the_first_contact(engine: Engine) -> None:
    _admit(engine, FLU, 6)
    with session_scope(engine) as s:
        holdout = [
            k
            for k, h in s.exec(
                select(Person.ben_nir_psa, Member.holdout).join(
                    Member, col(Member.person_id) == col(Person.id)
                )
            ).all()
            if h
        ]
    contacted, later, never = sorted(_statuses(engine, FLU.id))[:3]
    _contact(engine, FLU, contacted, ENTRY + timedelta(days=5))
    _contact(engine, FLU, later, ENTRY + timedelta(days=10))
    found = {
        contacted: ENTRY + timedelta(days=5),  # vaccinated the day of the message: counts
        later: ENTRY + timedelta(days=8),  # vaccinated before the message: does not
        never: ENTRY + timedelta(days=8),  # never contacted: not observed yet
    }
    fake = FakeObserver(found)
    counts = _observe(engine, FLU, fake, TODAY)
    assert fake.asked is not None
    asked = dict(zip(fake.asked["ben_nir_psa"], fake.asked["since"], strict=True))
    assert asked == {
        contacted: ENTRY + timedelta(days=5),
        later: ENTRY + timedelta(days=10),
        **dict.fromkeys(holdout, ENTRY),  # the holdout, never contacted, from their entry
    }
    assert counts["members_closed"] == 1
    st = _statuses(engine, FLU.id)
    assert (st[contacted], st[later], st[never]) == ("goal", "active", "active")


def test_an_enrolment_goal_is_not_observed_and_an_observed_goal_reads_no_feed(
    engine: Engine, tmp_path: Path
) -> None:
    _admit(engine, MT)
    fake = FakeObserver({})
    assert "skipped" in _observe(engine, D, fake, TODAY) and fake.asked is None
    feed = tmp_path / "f.csv"
    feed.write_text(f"ben_nir_psa,ben_rng_gem,date\nPSA000000,1,{TODAY.isoformat()}\n")
    done = stages.enrolment_stage(
        engine=engine,
        campaign=_campaign(MT),
        files=[feed],
        day=TODAY,
    )
    assert done["rows"] == 0 and done["files"] == 0


# --- objectives as a rate in the report --------------------------------------------------------


RATE = D.model_copy(
    update={
        "id": "rate-test",
        "objectives": Objectives(kind="rate", default=0.5, echelons={"91": 0.75}),
    }
)


def test_rate_objectives_follow_the_eligible_and_a_set_objective_wins(engine: Engine) -> None:
    _admit(engine, RATE, 10)
    with session_scope(engine) as s:
        rows = echelon_report(session=s, campaign_id=RATE.id, objectives=RATE.objectives)
    by = {r.echelon: r for r in rows}
    assert by["91"].eligible == 10
    assert (by["91"].objective, by["91"].objective_rate) == (8, 0.75)  # ceil(7.5)
    assert by["75"].objective == 0 and by["75"].objective_rate == 0.5  # nobody eligible
    t = total_row(rows)
    assert t.objective == 8 and t.objective_rate == pytest.approx(0.8)
    from campaigns.measurement.dashboard import set_objectives

    with session_scope(engine) as s:
        set_objectives(session=s, campaign_id=RATE.id, targets={"91": 3}, by="mgr")
    with session_scope(engine) as s:
        rows = echelon_report(session=s, campaign_id=RATE.id, objectives=RATE.objectives)
    assert {r.echelon: r.objective for r in rows}["91"] == 3


def test_the_effect_counts_the_campaigns_goal_rows_only(engine: Engine) -> None:
    _admit(engine, X, 8)
    _admit(engine, Y, 8)
    key = sorted(_statuses(engine, X.id))[0]
    with session_scope(engine) as s:
        s.add(
            Enrolment(
                campaign_id=Y.id,
                ben_nir_psa=key,
                ben_rng_gem=1,
                programme="sophia",
                enrolled_on=TODAY,
                channel="online",
                source="test",
            )
        )
    with session_scope(engine) as s:
        x = effect_report(session=s, campaign_id=X.id, window_days=60)[-1]
        y = effect_report(session=s, campaign_id=Y.id, window_days=60)[-1]
    assert sum(x.credited.values()) == 0 and sum(y.credited.values()) == 1


# --- migration 0009 ----------------------------------------------------------------------------


def test_migration_0009_credits_each_existing_row_to_the_campaigns_of_its_person(
    empty_url: str,  # noqa: F811
) -> None:
    engine = make_engine(empty_url)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    try:
        _migrate(engine, "0008")
        with engine.begin() as c:
            for cid in ("c1", "c2"):
                c.execute(
                    text(
                        "INSERT INTO campaign (id, name, definition_sha256, registered_at) "
                        "VALUES (:id, :id, :sha, :now)"
                    ),
                    {"id": cid, "sha": "0" * 64, "now": now},
                )
            for i in (1, 2):
                c.execute(
                    text(
                        "INSERT INTO person (id, ben_nir_psa, ben_rng_gem, nir, civilite, nom, "
                        "prenom, address_lines, compte_ameli, echelon, departement, sex, "
                        "phone_invalid, email_invalid, address_invalid, updated_at) VALUES "
                        "(:id, :psa, 1, 'x', 'Mme', 'N', 'P', '[]', false, '75', '75', 2, "
                        "false, false, false, :now)"
                    ),
                    {"id": i, "psa": f"PSA{i}", "now": now},
                )
            # Person 1 is a member of both campaigns; person 2 of none.
            for cid in ("c1", "c2"):
                c.execute(
                    text(
                        "INSERT INTO member (campaign_id, person_id, echelon, entered_on, "
                        "anchor_date, priority, gaps, holdout, status, last_seen_on) VALUES "
                        "(:cid, 1, '75', :d, :d, false, '[]', false, 'active', :d)"
                    ),
                    {"cid": cid, "d": date(2026, 2, 1)},
                )
            for i in (1, 2):
                c.execute(
                    text(
                        "INSERT INTO enrolment (ben_nir_psa, ben_rng_gem, programme, "
                        "enrolled_on, channel, source) VALUES (:psa, 1, 'sophia', :d, "
                        "'online', 'feed.csv')"
                    ),
                    {"psa": f"PSA{i}", "d": date(2026, 2, 20)},
                )
        upgrade(engine)
        with engine.connect() as c:
            rows = c.execute(
                text(
                    "SELECT ben_nir_psa, campaign_id FROM enrolment "
                    "ORDER BY ben_nir_psa, campaign_id"
                )
            ).all()
        assert [tuple(r) for r in rows] == [("PSA1", "c1"), ("PSA1", "c2"), ("PSA2", None)]
        _migrate(engine, "0008", down=True)
        with engine.connect() as c:
            n = c.execute(text("SELECT count(*) FROM enrolment")).scalar_one()
        assert n == 2
    finally:
        engine.dispose()


# --- relance enrolments --campaign ID FILE ----------------------------------------------------


def test_the_cli_ingests_a_campaigns_feed(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from campaigns.settings import get_settings
    from console.cli import app

    monkeypatch.setenv("RELANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        _admit(engine, D)
        _admit(engine, X)
        key = sorted(_statuses(engine, D.id))[0]
        feed = tmp_path / "adhesions.csv"
        feed.write_text(
            "ben_nir_psa,ben_rng_gem,date_adhesion,canal\n"
            f"{key},1,{TODAY.isoformat()},online\n"
            f"{key},1,2026-02-30,online\n"
        )
        r = CliRunner().invoke(app, ["enrolments", "--campaign", D.id, str(feed)])
        assert r.exit_code == 1, r.output  # one bad line: said, the good one went in
        assert "1 nouvelle(s), 1 membre(s) sorti(s)" in r.output
        assert "ligne 3, colonne date_adhesion" in r.output
        assert _statuses(engine, D.id)[key] == "goal"
        assert _statuses(engine, X.id)[key] == "active"
        r = CliRunner().invoke(app, ["enrolments", "--campaign", "nope", str(feed)])
        assert r.exit_code == 2 and "nope" in r.output
    finally:
        get_settings.cache_clear()


def test_which_rows_stop_a_campaign(engine: Engine) -> None:
    rows = [
        (X.id, "sophia", "online"),  # X's own enrolment
        (Y.id, "sophia", "paper"),  # an enrolment in the programme brought by Y's feed
        (None, "sophia", "online"),  # older than per-campaign crediting
        ("other", "registry_fact", "observed"),  # another campaign's observation
        (MT.id, "registry_fact", "observed"),  # MT's own observation
    ]
    with session_scope(engine) as s:
        for i, (cid, programme, channel) in enumerate(rows):
            s.add(
                Enrolment(
                    campaign_id=cid,
                    ben_nir_psa=f"PSA{i}",
                    ben_rng_gem=1,
                    programme=programme,
                    enrolled_on=TODAY,
                    channel=channel,
                    source="t",
                )
            )
    with session_scope(engine) as s:

        def stop(d: CampaignDefinition) -> set[str]:
            q = select(Enrolment.ben_nir_psa).where(goal_reached(d.id, d.goal))
            return set(s.exec(q).all())

        assert stop(X) == {"PSA0", "PSA1", "PSA2"}
        assert stop(MT) == {"PSA4"}


def test_the_dashboard_shows_the_rate_and_sophia_keeps_its_columns(engine: Engine) -> None:
    from campaigns.app.results import _columns
    from campaigns.measurement.dashboard import results

    _admit(engine, RATE, 10)
    with session_scope(engine) as s:
        rows, total = results(session=s, definition=RATE, today=TODAY)
    r91 = {r.echelon: r for r in rows}["91"]
    assert (r91.objective, r91.objective_rate) == (8, 75.0)
    assert total.objective_rate == pytest.approx(80.0)
    assert "objective_rate" not in [k for k, _ in _columns(D)]  # a count: no rate column


def test_another_campaigns_observed_goal_stops_neither_tick_nor_dispatch(engine: Engine) -> None:
    """A flu vaccination observed for FLU does not close nor block the same person in X."""
    _admit(engine, FLU, 4)
    _admit(engine, X, 4)
    key = sorted(_statuses(engine, X.id))[0]
    with session_scope(engine) as s:
        s.add(
            Enrolment(
                campaign_id=FLU.id,
                ben_nir_psa=key,
                ben_rng_gem=1,
                programme="care_act",
                enrolled_on=ENTRY,
                channel="observed",
                source="t",
            )
        )
    tick(engine=engine, definition=X, today=TODAY)
    tick(engine=engine, definition=FLU, today=TODAY)
    assert _statuses(engine, X.id)[key] == "active"
    assert _statuses(engine, FLU.id)[key] == "goal"
    with session_scope(engine) as s:
        person = s.exec(select(Person).where(Person.ben_nir_psa == key)).one()
        for d, reached in ((X, False), (FLU, True)):
            facts = load_facts(
                s, [person], today=TODAY, pressure=None, goal=goal_reached(d.id, d.goal)
            )
            assert facts[person.id or 0].enrolled is reached
