"""Drafts and versions made in the console (both backends): stored per version, checked with
file, line and YAML path in French, invisible to the catalogue and the flows until ready, and
a running campaign's edit is a new version from a date."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner

from campaigns.app.drafts import (
    DraftError,
    check_draft,
    create_draft,
    current_files,
    draft_files,
    mark_ready,
    new_version,
    save_draft_files,
)
from campaigns.app.lifecycle import campaign_overview, campaign_overviews
from campaigns.cascade.membership import admit_targets
from campaigns.cascade.tick import tick
from campaigns.definition import files as definition_files
from campaigns.definition.catalog import campaign_by_id, list_campaigns, load_campaign
from campaigns.definition.model import DefinitionError
from campaigns.ledger import db
from campaigns.ledger.db import session_scope
from campaigns.ledger.definition_files import files_of
from campaigns.ledger.models import Action, AuditEvent, Campaign, Member
from campaigns.ledger.registry import campaign_versions, register_campaign, version_of
from campaigns.settings import get_settings
from console.cli import app
from console.demo.simulator import at
from tests.factories import population

DAY = date(2026, 10, 14)
NOW = at(DAY, 9)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The console's campaign versions in a folder of this test, read by the catalogue."""
    out = tmp_path / "campaigns"
    monkeypatch.setattr(definition_files, "console_root", lambda: out)
    return out


def _actions(engine: Engine, event: str) -> list[AuditEvent]:
    with session_scope(engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == event)).all())


def _draft(engine: Engine, cid: str = "essai", origin: str = "sophia-ald8") -> None:
    with session_scope(engine) as s:
        create_draft(session=s, actor="mgr", campaign_id=cid, name="Essai", origin=origin, now=NOW)


def test_a_copied_draft_is_stored_and_invisible_to_the_catalogue_and_flows(
    engine: Engine, root: Path
) -> None:
    _draft(engine)
    with session_scope(engine) as s:
        files = draft_files(session=s, campaign_id="essai")
        overview = campaign_overview(session=s, actor="mgr", campaign_id="essai", today=DAY)
        listed = {v.id: v.state for v in campaign_overviews(session=s, actor="mgr", today=DAY)}
        assert s.get(Campaign, "essai") is None
        assert not s.exec(select(Member).where(Member.campaign_id == "essai")).first()
        assert not s.exec(select(Action).where(Action.campaign_id == "essai")).first()
    assert "id: essai\n" in files["campaign.yaml"]
    assert 'name: "Essai"' in files["campaign.yaml"]
    assert "templates/letter.html.j2" in files
    assert overview.state == "draft" and listed["essai"] == "draft"
    # What the flows load (targeting, tick, dispatch all start from load_campaign) refuses it.
    assert "essai" not in {d.id for d in list_campaigns()}
    with pytest.raises(DefinitionError):
        load_campaign("essai")
    assert not root.exists() or not (root / "essai").exists()
    assert _actions(engine, "campaign_draft_create")[0].detail["origin"] == "sophia-ald8"


def test_ids_are_unique_and_well_formed(engine: Engine, root: Path) -> None:
    _draft(engine)
    for cid, why in [
        ("sophia-ald8", "porte déjà"),
        ("essai", "porte déjà"),
        ("Pas bien", "identifiant de campagne refusé"),
    ]:
        with pytest.raises(DraftError, match=why), session_scope(engine) as s:
            create_draft(session=s, actor="mgr", campaign_id=cid, name="x", now=NOW)


def test_a_broken_yaml_is_reported_with_file_line_and_path_in_french(
    engine: Engine, root: Path
) -> None:
    _draft(engine)
    with session_scope(engine) as s:
        files = draft_files(session=s, campaign_id="essai")
        yaml = files["campaign.yaml"].replace("horizon_days: 90\n", "horizon_days: 90\n  mois: 3\n")
        save_draft_files(
            session=s, actor="mgr", campaign_id="essai", files={"campaign.yaml": yaml}, now=NOW
        )
        checked = check_draft(session=s, actor="mgr", campaign_id="essai")
    line = yaml.splitlines().index("  mois: 3") + 1
    assert not checked.ok
    assert any(
        f"campaign.yaml:{line}: targeting.mois: clé inconnue" in p for p in checked.problems
    ), checked.problems
    assert "/tmp" not in "\n".join(checked.problems)
    assert _actions(engine, "campaign_draft_check")[0].detail == {"problems": 1}


def test_unreadable_yaml_names_its_line(engine: Engine, root: Path) -> None:
    _draft(engine)
    with session_scope(engine) as s:
        save_draft_files(
            session=s,
            actor="mgr",
            campaign_id="essai",
            files={"campaign.yaml": "id: essai\nname: [pas fermé\ndates: {}\n"},
            now=NOW,
        )
        checked = check_draft(session=s, actor="mgr", campaign_id="essai")
    assert any("campaign.yaml:" in p and "YAML illisible" in p for p in checked.problems)


def _checked_templates(engine: Engine, files: dict[str, str]) -> list[str]:
    """A fresh draft's problems once these templates are saved into it."""
    _draft(engine)
    with session_scope(engine) as s:
        save_draft_files(session=s, actor="mgr", campaign_id="essai", files=files, now=NOW)
        return check_draft(session=s, actor="mgr", campaign_id="essai").problems


def test_every_broken_template_is_reported_with_its_line(engine: Engine, root: Path) -> None:
    problems = _checked_templates(
        engine,
        {
            "templates/mailbox_message.md.j2": "Bonjour\n{% if %}\n",
            "templates/letter.html.j2": "<p>\n{{ inconnue.x }}\n",
        },
    )
    text = "\n".join(problems)
    assert "templates/mailbox_message.md.j2:2: syntaxe du modèle" in text, text
    assert "templates/letter.html.j2:2: variable inconnue : « inconnue » n'est pas défini" in text
    assert "une expression était attendue" in text, text


def test_a_template_cannot_reach_the_server_or_change_what_others_get(
    engine: Engine, root: Path
) -> None:
    """Templates are written in the browser: Python's internals and mutating calls are refused,
    each with its file and line in French (an ordinary Jinja environment ran the first)."""
    problems = _checked_templates(
        engine,
        {
            "templates/mailbox_message.md.j2": (
                "Objet : x\nBonjour\n{{ cycler.__init__.__globals__.os.getcwd() }}\n"
            ),
            "templates/letter.html.j2": "<p>\n\n{{ person.address_lines.append('x') }}\n",
        },
    )
    text = "\n".join(problems)
    assert len(problems) == 2, text
    assert "templates/mailbox_message.md.j2:3: accès interdit à « __init__ »" in text, text
    assert "templates/letter.html.j2:3: accès interdit à « append »" in text, text
    assert "il n'appelle ni ne modifie rien d'autre" in text


def test_a_refusal_behind_a_condition_the_samples_do_not_meet_is_found_at_the_check(
    engine: Engine, root: Path
) -> None:
    """The samples render one branch of each `if`: the template's text is read for what the
    sandbox refuses, in the templates it includes too, so it fails at the check and not at one
    person's send."""
    problems = _checked_templates(
        engine,
        {
            "templates/mailbox_message.md.j2": (
                "Objet : x\nBonjour\n{% if person.nom == 'DUPONT' %}\n"
                "{{ person.nom|attr('__class__') }}\n{% endif %}\n"
            ),
            "templates/letter.html.j2": "<p>\n{% include 'pied.html.j2' %}\n",
            "templates/pied.html.j2": (
                "{% if member.gaps|length > 99 %}\n{{ member.gaps.pop() }}{% endif %}\n"
            ),
        },
    )
    text = "\n".join(problems)
    assert len(problems) == 2, text
    assert "templates/mailbox_message.md.j2:4: accès interdit à « __class__ »" in text, text
    assert "templates/pied.html.j2:2: accès interdit à « pop »" in text, text


def test_a_file_name_that_walks_out_is_refused_and_nothing_saved(
    engine: Engine, root: Path
) -> None:
    _draft(engine)
    with pytest.raises(DraftError) as err, session_scope(engine) as s:
        save_draft_files(
            session=s,
            actor="mgr",
            campaign_id="essai",
            files={"templates/ok.j2": "x", "../../etc/passwd": "x"},
            now=NOW,
        )
    assert "nom de fichier refusé" in err.value.problems[0]
    with session_scope(engine) as s:
        assert "templates/ok.j2" not in draft_files(session=s, campaign_id="essai")


def test_ready_only_when_valid_then_the_catalogue_sees_it(engine: Engine, root: Path) -> None:
    _draft(engine)
    with session_scope(engine) as s:
        save_draft_files(
            session=s,
            actor="mgr",
            campaign_id="essai",
            files={"templates/letter.html.j2": "{% for %}"},
            now=NOW,
        )
    with pytest.raises(DraftError) as err, session_scope(engine) as s:
        mark_ready(session=s, actor="mgr", campaign_id="essai", now=NOW)
    assert "letter.html.j2:1: syntaxe du modèle" in "\n".join(err.value.problems)
    assert not (root / "essai").exists()
    assert "essai" not in {d.id for d in list_campaigns()}
    with session_scope(engine) as s:
        sophia = campaign_by_id("sophia-ald8").folder / "templates" / "letter.html.j2"
        save_draft_files(
            session=s,
            actor="mgr",
            campaign_id="essai",
            files={"templates/letter.html.j2": sophia.read_text(encoding="utf-8")},
            now=NOW,
        )
        mark_ready(session=s, actor="mgr", campaign_id="essai", now=NOW)
    assert (root / "essai" / "v1" / "campaign.yaml").is_file()
    assert campaign_by_id("essai").definition.name == "Essai"
    with session_scope(engine) as s:
        assert campaign_overview(session=s, actor="mgr", campaign_id="essai").state == "ready"
        with pytest.raises(DraftError, match="nouvelle version"):
            save_draft_files(session=s, actor="mgr", campaign_id="essai", files={}, now=NOW)
    assert len(_actions(engine, "campaign_draft_ready")) == 1


def test_a_draft_from_scratch_is_a_valid_skeleton(engine: Engine, root: Path) -> None:
    _draft(engine, cid="vierge", origin="")
    with session_scope(engine) as s:
        assert check_draft(session=s, actor="mgr", campaign_id="vierge").problems == []
        mark_ready(session=s, actor="mgr", campaign_id="vierge", now=NOW)
    assert campaign_by_id("vierge").definition.dates.start == DAY


def test_the_id_cannot_be_changed_in_the_yaml(engine: Engine, root: Path) -> None:
    _draft(engine)
    with session_scope(engine) as s:
        yaml = draft_files(session=s, campaign_id="essai")["campaign.yaml"]
        save_draft_files(
            session=s,
            actor="mgr",
            campaign_id="essai",
            files={"campaign.yaml": yaml.replace("id: essai", "id: sophia-ald8")},
            now=NOW,
        )
        problems = check_draft(session=s, actor="mgr", campaign_id="essai").problems
    assert any("id: l'identifiant doit rester « essai »" in p for p in problems), problems


def _running(engine: Engine) -> None:
    _draft(engine)
    with session_scope(engine) as s:
        mark_ready(session=s, actor="mgr", campaign_id="essai", now=NOW)
    c = campaign_by_id("essai")
    with session_scope(engine) as s:
        register_campaign(
            session=s, definition=c.definition, launched=True, now=NOW, folder=c.folder
        )


def test_an_edit_of_a_running_campaign_is_a_version_from_a_date(engine: Engine, root: Path) -> None:
    _running(engine)
    with session_scope(engine) as s:
        files = current_files(session=s, campaign_id="essai")
        assert files_of(session=s, campaign_id="essai", version=1) == files
    edited = {**files, "campaign.yaml": files["campaign.yaml"].replace('"Essai"', '"Essai v2"')}
    for day in (DAY, DAY - timedelta(days=3)):
        with pytest.raises(DraftError, match="au plus tôt demain"), session_scope(engine) as s:
            new_version(
                session=s, actor="mgr", campaign_id="essai", files=edited, effective_on=day, now=NOW
            )
    with pytest.raises(DraftError, match="rien n'a changé"), session_scope(engine) as s:
        new_version(
            session=s,
            actor="mgr",
            campaign_id="essai",
            files=files,
            effective_on=DAY + timedelta(days=1),
            now=NOW,
        )
    effective = DAY + timedelta(days=6)
    with session_scope(engine) as s:
        v = new_version(
            session=s,
            actor="mgr",
            campaign_id="essai",
            files=edited,
            effective_on=effective,
            now=NOW,
        )
        assert v.version == 2
    # Before its date the catalogue serves version 1, from it version 2.
    assert (
        definition_files.effective_folders(root, effective - timedelta(days=1))["essai"].name
        == "v1"
    )
    assert definition_files.effective_folders(root, effective)["essai"].name == "v2"
    d2 = campaign_by_id("essai").definition  # the real today is past the date
    assert d2.name == "Essai v2"
    # The flows register what the catalogue serves: the version made ahead, not a third one.
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d2, now=at(effective, 6))
        versions = campaign_versions(session=s, campaign_id="essai")
        assert [(x.version, x.effective_on, x.recorded_by) for x in versions] == [
            (1, DAY, None),
            (2, effective, "mgr"),
        ]
        assert version_of(session=s, definition=d2) == 2
        assert (
            files_of(session=s, campaign_id="essai", version=2)["campaign.yaml"]
            == (edited["campaign.yaml"])
        )
        overview = campaign_overview(session=s, actor="mgr", campaign_id="essai", today=effective)
    assert overview.versions[1][:2] == (2, effective)
    assert overview.authors == {1: None, 2: "mgr"}
    event = _actions(engine, "campaign_version_new")[0]
    assert event.detail["version"] == 2 and event.detail["effective_on"] == effective.isoformat()


def test_a_version_with_a_broken_file_is_refused_with_its_line(engine: Engine, root: Path) -> None:
    _running(engine)
    with session_scope(engine) as s:
        files = current_files(session=s, campaign_id="essai")
    files["templates/call_script.md.j2"] = "Bonjour\n\n{{ personne.nom }}\n"
    with pytest.raises(DraftError) as err, session_scope(engine) as s:
        new_version(
            session=s,
            actor="mgr",
            campaign_id="essai",
            files=files,
            effective_on=DAY + timedelta(days=2),
            now=NOW,
        )
    assert "templates/call_script.md.j2:3: variable inconnue" in "\n".join(err.value.problems)
    assert not (root / "essai" / "v2").exists()
    with session_scope(engine) as s:
        assert len(campaign_versions(session=s, campaign_id="essai")) == 1


def test_shipped_campaign_files_are_kept_with_their_version(engine: Engine, root: Path) -> None:
    c = load_campaign("sophia-ald8")
    with session_scope(engine) as s:
        register_campaign(session=s, definition=c.definition, now=NOW, folder=c.folder)
        kept = files_of(session=s, campaign_id="sophia-ald8", version=1)
    assert kept["campaign.yaml"] == (c.folder / "campaign.yaml").read_text(encoding="utf-8")
    assert set(kept) >= {"templates/letter.html.j2", "templates/call_script.md.j2"}


def test_the_cli_creates_checks_and_readies_a_draft_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELANCE_DATABASE_URL", f"sqlite:///{tmp_path / 'relance.db'}")
    monkeypatch.setattr(db, "_engines", {})
    get_settings.cache_clear()
    try:

        def run(*args: str) -> tuple[int, str]:
            r = CliRunner().invoke(app, ["campaigns", "draft", *args])
            return r.exit_code, " ".join(r.output.split())

        code, text = run("essai-cli", "--by", "cm", "--from", "mt-ald", "--name", "Essai CLI")
        assert code == 0 and "brouillon créé par cm" in text and "--ready" in text, text
        with pytest.raises(DefinitionError):
            campaign_by_id("essai-cli")
        assert run("essai-cli", "--by", "cm", "--ready") == (0, "essai-cli : prête")
        assert (tmp_path / "campaigns" / "essai-cli" / "v1" / "campaign.yaml").is_file()
        assert campaign_by_id("essai-cli").definition.name == "Essai CLI"
        code, text = run("essai-cli", "--by", "cm")
        assert code == 2 and "nouvelle version" in text
    finally:
        get_settings.cache_clear()


def test_actions_planned_from_the_date_carry_the_new_version(engine: Engine, root: Path) -> None:
    _draft(engine, cid="vierge", origin="")
    with session_scope(engine) as s:
        mark_ready(session=s, actor="mgr", campaign_id="vierge", now=NOW)
    d1 = campaign_by_id("vierge").definition
    with session_scope(engine) as s:
        register_campaign(session=s, definition=d1, launched=True, now=NOW)
        files = current_files(session=s, campaign_id="vierge")
    files["campaign.yaml"] = files["campaign.yaml"].replace('"Essai"', '"Essai, version 2"')
    later = DAY + timedelta(days=2)
    with session_scope(engine) as s:
        new_version(
            session=s, actor="mgr", campaign_id="vierge", files=files, effective_on=later, now=NOW
        )
    d2 = campaign_by_id("vierge").definition
    seen: list[dict[int | None, int | None]] = []
    for d, day, start in ((d1, DAY, 0), (d2, later, 10)):
        targets, people = population(2, anchor=day, start=start)
        with session_scope(engine) as s:
            register_campaign(session=s, definition=d, now=at(day, 6))
            admit_targets(session=s, definition=d, targets=targets, people=people, today=day)
        tick(engine=engine, definition=d, today=day)
        with session_scope(engine) as s:
            planned = s.exec(select(Action).where(Action.campaign_id == "vierge")).all()
            seen.append({a.id: a.definition_version for a in planned})
    with session_scope(engine) as s:
        by_version = campaign_overview(
            session=s, actor="mgr", campaign_id="vierge", today=later
        ).by_version
    # Those planned before the date by version 1, from it by version 2; the page counts each.
    before, after = seen
    assert before and set(before.values()) == {1}
    assert {v for k, v in after.items() if k not in before} == {2}
    assert by_version == dict(Counter(after.values()))
