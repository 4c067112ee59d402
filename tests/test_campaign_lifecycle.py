"""A campaign's life (both backends): pause holds every new action without losing any, resume
carries on, end cancels what is queued; versions of the definition; each step audited."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from campaigns.app.calls import record_call_outcome
from campaigns.app.lifecycle import (
    LifecycleError,
    campaign_overview,
    campaign_state,
    end_campaign,
    pause_campaign,
    resume_campaign,
)
from campaigns.calls.queue import NotYourCall, claim_next, held_claim
from campaigns.cascade.dispatch import Adapters, dispatch
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.review import open_list
from campaigns.cascade.tick import tick
from campaigns.definition.catalog import campaign_by_id, load_campaign
from campaigns.definition.model import (
    DEFINITIONS_DIR,
    Anchor,
    CampaignDefinition,
    Dates,
    parse_definition,
)
from campaigns.ledger import db
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, AuditEvent, Member
from campaigns.ledger.registry import campaign_versions, register_campaign
from campaigns.settings import get_settings
from channels.email import LocalEmail
from channels.letters import LocalLetters
from channels.mailbox import LocalMailbox
from console.cli import app
from console.demo.simulator import at
from tests.factories import population

SOPHIA = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
LAUNCH, END = date(2026, 10, 14), date(2027, 1, 31)


def wave(cid: str = "vague") -> CampaignDefinition:
    """Sophia's cascade as a wave, its call due from day 0, no validation list."""
    call = SOPHIA.cascade[0].model_copy(update={"start_days": 0, "end_days": 30})
    return SOPHIA.model_copy(
        update={
            "id": cid,
            "anchor": Anchor(kind="wave"),
            "dates": Dates(start=LAUNCH, end=END),
            "cascade": [call, *SOPHIA.cascade[1:]],
        }
    )


def _admit(engine: Engine, d: CampaignDefinition, n: int = 6, start: int = 0) -> None:
    targets, people = population(n, anchor=date(2026, 12, 20), start=start)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, launched=True, now=at(LAUNCH, 8))
        admit_targets(session=s, definition=d, targets=targets, people=people, today=LAUNCH)


def _actions(engine: Engine) -> list[tuple[int | None, str, str, str | None]]:
    with session_scope(engine) as s:
        return [
            (a.id, a.channel, a.state, a.reason)
            for a in s.exec(select(Action).order_by(col(Action.id)))
        ]


def _boxes(tmp_path: Path) -> Adapters:
    return Adapters(
        mailbox=LocalMailbox(tmp_path), email=LocalEmail(tmp_path), letters=LocalLetters(tmp_path)
    )


def _audited(s: Session, action: str) -> list[AuditEvent]:
    return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_paused_campaign_plans_nothing_and_resumes(engine: Engine) -> None:
    d = wave()
    _admit(engine, d)
    with session_scope(engine) as s:
        pause_campaign(session=s, actor="cm", campaign_id=d.id, definition=d)
    assert tick(engine=engine, definition=d, today=LAUNCH) == {"paused": 1, "batches": 0}
    assert _actions(engine) == []
    with session_scope(engine) as s:
        assert campaign_state(session=s, campaign_id=d.id, definition=d, today=LAUNCH) == "paused"
        assert {m.status for m in s.exec(select(Member))} == {"active"}
        resume_campaign(session=s, actor="cm", campaign_id=d.id)
    assert tick(engine=engine, definition=d, today=LAUNCH)["actions_written"] > 0
    with session_scope(engine) as s:
        assert len(_audited(s, "campaign_pause")) == 1
        assert len(_audited(s, "campaign_resume")) == 1


def test_pause_holds_queued_actions_and_calls_without_losing_them(
    engine: Engine, tmp_path: Path
) -> None:
    d = wave()
    campaign = replace(load_campaign("sophia-ald8"), definition=d)
    _admit(engine, d)
    tick(engine=engine, definition=d, today=LAUNCH)
    before = _actions(engine)
    assert {ch for _, ch, st, _ in before if st == "queued"} >= {"letter", "phone"}
    with session_scope(engine) as s:
        pause_campaign(session=s, actor="cm", campaign_id=d.id, definition=d)
    sent = dispatch(
        engine=engine, campaign=campaign, channel="letter", adapters=_boxes(tmp_path), today=LAUNCH
    )
    assert sent == {}
    with session_scope(engine) as s:
        assert claim_next(session=s, adviser="a", now=at(LAUNCH, 11), definitions={d.id: d}) is None
    assert _actions(engine) == before  # held, not lost: still queued, untouched
    with (
        pytest.raises(LifecycleError, match="seule une campagne en cours"),
        session_scope(engine) as s,
    ):
        pause_campaign(session=s, actor="cm", campaign_id=d.id, definition=d)
    with session_scope(engine) as s:
        resume_campaign(session=s, actor="cm", campaign_id=d.id)
    letters = sum(1 for _, ch, st, _ in before if ch == "letter" and st == "queued")
    sent = dispatch(
        engine=engine, campaign=campaign, channel="letter", adapters=_boxes(tmp_path), today=LAUNCH
    )
    assert sent["sent"] == letters
    with session_scope(engine) as s:
        assert claim_next(session=s, adviser="a", now=at(LAUNCH, 11), definitions={d.id: d})


def test_end_cancels_what_is_queued_and_lets_members_go(engine: Engine, tmp_path: Path) -> None:
    d = wave()
    _admit(engine, d)
    tick(engine=engine, definition=d, today=LAUNCH)
    queued = [a for a in _actions(engine) if a[2] == "queued"]
    day = LAUNCH + timedelta(days=3)  # long before the end date
    with session_scope(engine) as s:
        pause_campaign(session=s, actor="cm", campaign_id=d.id, definition=d)
        counts = end_campaign(session=s, actor="cm", campaign_id=d.id, today=day, now=at(day, 9))
    assert counts == {"cancelled_campaign_ended": len(queued), "left_campaign_ended": 6}
    assert not [a for a in _actions(engine) if a[2] == "queued"]
    with session_scope(engine) as s:
        cancelled = s.exec(select(Action).where(Action.state == "cancelled")).all()
        assert {a.reason for a in cancelled} == {"campaign_ended"} and len(cancelled) == len(queued)
        assert {(m.status, m.status_reason) for m in s.exec(select(Member))} == {
            ("completed", "campaign_ended")
        }
        assert campaign_state(session=s, campaign_id=d.id, definition=d, today=day) == "ended"
        [event] = _audited(s, "campaign_end")
        assert event.actor == "cm" and event.detail["cancelled_campaign_ended"] == len(queued)
    # New members admitted afterwards are let go by the next tick, never contacted.
    _admit(engine, d, n=2, start=50)
    after = tick(engine=engine, definition=d, today=day + timedelta(days=1))
    assert after["left_campaign_ended"] == 2 and after["batches"] == 0
    assert not [a for a in _actions(engine) if a[2] == "queued"]
    with session_scope(engine) as s:
        assert claim_next(session=s, adviser="a", now=at(day, 11), definitions={d.id: d}) is None
    with pytest.raises(LifecycleError, match="terminée"), session_scope(engine) as s:
        resume_campaign(session=s, actor="cm", campaign_id=d.id)
    with pytest.raises(LifecycleError, match="déjà terminée"), session_scope(engine) as s:
        end_campaign(session=s, actor="cm", campaign_id=d.id)


def test_an_edit_while_running_is_a_new_version_recorded_on_actions(engine: Engine) -> None:
    d = wave()
    _admit(engine, d, n=3)
    tick(engine=engine, definition=d, today=LAUNCH)
    edited = d.model_copy(update={"name": d.name + " (v2)"})
    from_day = LAUNCH + timedelta(days=1)
    with session_scope(engine) as s:
        register_campaign(session=s, definition=edited, now=at(from_day, 8), effective_on=from_day)
        versions = campaign_versions(session=s, campaign_id=d.id)
        assert [(v.version, v.effective_on) for v in versions] == [(1, LAUNCH), (2, from_day)]
        targets, people = population(3, anchor=date(2026, 12, 20), start=20)
        admit_targets(session=s, definition=edited, targets=targets, people=people, today=from_day)
    tick(engine=engine, definition=edited, today=from_day)
    with session_scope(engine) as s:
        by_person: dict[int, set[int | None]] = {}
        for a in s.exec(select(Action)):
            by_person.setdefault(a.person_id, set()).add(a.definition_version)
        first = {m.person_id for m in s.exec(select(Member)) if m.entered_on == LAUNCH}
        assert {p: v for p, v in by_person.items() if p in first} and all(
            v == {1} for p, v in by_person.items() if p in first
        )
        assert all(v == {2} for p, v in by_person.items() if p not in first)
        assert len(by_person) > len(first)
        seen = campaign_overview(session=s, actor="cm", campaign_id=d.id, definition=edited)
        assert set(seen.by_version) == {1, 2} and seen.version == 2


def test_before_launch_an_edit_refreshes_the_only_version(engine: Engine) -> None:
    d = wave("brouillon").model_copy(
        update={"validation": SOPHIA.validation.model_copy(update={"required": True})}
    )
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, now=at(LAUNCH, 8))
        register_campaign(session=s, definition=d.model_copy(update={"name": "autre"}))
        assert [v.version for v in campaign_versions(session=s, campaign_id=d.id)] == [1]


def test_the_overview_says_the_state_and_the_next_step_in_french(engine: Engine) -> None:
    d = wave("apercu").model_copy(
        update={"validation": SOPHIA.validation.model_copy(update={"required": True})}
    )
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d, now=at(LAUNCH, 8))
        ready = campaign_overview(
            session=s, actor="cm", campaign_id=d.id, definition=d, today=LAUNCH
        )
        assert (ready.state, ready.state_label) == ("ready", "prête")
        assert "liste à valider" in ready.next_step
        lst = open_list(session=s, definition=d, today=LAUNCH)
        s.flush()
        view = campaign_overview(
            session=s, actor="cm", campaign_id=d.id, definition=d, today=LAUNCH
        )
        assert view.state == "validating" and f"valider la liste n° {lst.id}" in view.next_step
        assert view.start == LAUNCH and view.end == END and view.version == 1
        with pytest.raises(LifecycleError, match="seule une campagne en cours"):
            pause_campaign(session=s, actor="cm", campaign_id=d.id, definition=d)
        assert len(_audited(s, "view_campaign")) == 2


def test_the_cli_pauses_resumes_and_ends_a_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELANCE_DATABASE_URL", f"sqlite:///{tmp_path / 'relance.db'}")
    monkeypatch.setattr(db, "_engines", {})
    get_settings.cache_clear()
    try:
        grippe = campaign_by_id("grippe-2026").definition  # no list to validate: running
        with session_scope(db.get_engine()) as s:
            register_campaign(session=s, definition=grippe)

        def run(*args: str) -> tuple[int, str]:
            r = CliRunner().invoke(app, ["campaigns", *args])
            return r.exit_code, " ".join(r.output.split())

        code, text = run("show", "grippe-2026")
        assert code == 0 and "état : en cours" in text and "v1 depuis le" in text
        assert run("pause", "grippe-2026", "--by", "cm")[1].startswith("grippe-2026 en pause")
        code, text = run("list")
        assert code == 0 and "en pause" in text and "prête" in text  # the others: not registered
        assert run("pause", "grippe-2026", "--by", "cm")[0] == 2
        assert run("resume", "grippe-2026", "--by", "cm") == (0, "grippe-2026 reprise par cm")
        assert run("end", "grippe-2026", "--by", "cm")[0] == 2  # --yes required
        code, text = run("end", "grippe-2026", "--by", "cm", "--yes")
        assert code == 0 and "terminée par cm : 0 action(s) annulée(s)" in text
        assert "état : terminée" in run("show", "grippe-2026")[1]
        with session_scope(db.get_engine()) as s:
            done = [e.action for e in s.exec(select(AuditEvent).order_by(col(AuditEvent.id)))]
        assert [a for a in done if a.startswith("campaign_")] == [
            "campaign_pause",
            "campaign_resume",
            "campaign_end",
        ]
    finally:
        get_settings.cache_clear()


def test_a_paused_campaign_admits_nobody_new_and_admits_them_after_the_resume(
    engine: Engine,
) -> None:
    d = wave()
    _admit(engine, d)
    newcomers, people = population(3, anchor=date(2026, 12, 20), start=50)
    with session_scope(engine) as s:
        pause_campaign(session=s, actor="cm", campaign_id=d.id, definition=d)
    day = LAUNCH + timedelta(days=1)
    with session_scope(engine) as s:
        counts = admit_targets(session=s, definition=d, targets=newcomers, people=people, today=day)
    assert counts["admitted"] == 0 and counts["not_admitted_paused"] == 3
    with session_scope(engine) as s:
        assert len(s.exec(select(Member)).all()) == 6
        resume_campaign(session=s, actor="cm", campaign_id=d.id)
    # Still eligible the day after the resume: nobody was lost, they come in now.
    with session_scope(engine) as s:
        counts = admit_targets(session=s, definition=d, targets=newcomers, people=people, today=day)
    assert counts["admitted"] == 3 and "not_admitted_paused" not in counts
    with session_scope(engine) as s:
        assert {m.status for m in s.exec(select(Member))} == {"active"}
        assert len(s.exec(select(Member)).all()) == 9


def test_pause_gives_back_the_calls_advisers_hold(engine: Engine) -> None:
    d = wave()
    _admit(engine, d)
    tick(engine=engine, definition=d, today=LAUNCH)
    now = at(LAUNCH, 11)
    with session_scope(engine) as s:
        claim = claim_next(session=s, adviser="a", now=now, definitions={d.id: d})
        assert claim is not None
    before = _actions(engine)
    with session_scope(engine) as s:
        pause_campaign(session=s, actor="cm", campaign_id=d.id, definition=d, now=now)
    with session_scope(engine) as s:
        held = s.get(Action, claim.action_id)
        assert held is not None and held.state == "queued"
        assert (held.claimed_by, held.lease_until) == (None, None)
        assert held_claim(session=s, adviser="a", now=now) is None
        assert claim_next(session=s, adviser="a", now=now, definitions={d.id: d}) is None
        [event] = _audited(s, "campaign_pause")
        assert event.detail["calls_released"] == 1
    assert _actions(engine) == before  # held, not lost
    # The adviser still on the card is told why the call is no longer theirs.
    with pytest.raises(NotYourCall, match="campagne suspendue"), session_scope(engine) as s:
        record_call_outcome(
            session=s, actor="a", action_id=claim.action_id, outcome="refused", now=now,
            definition=d,
        )  # fmt: skip
    assert _actions(engine) == before
    with session_scope(engine) as s:
        resume_campaign(session=s, actor="cm", campaign_id=d.id)
    with session_scope(engine) as s:
        again = claim_next(session=s, adviser="b", now=now, definitions={d.id: d})
        assert again is not None and again.action_id == claim.action_id
