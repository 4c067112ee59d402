"""Campaign shape: dates, anchors, step timing and conditions are validated where written."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from campaigns.definition.model import (
    CampaignDefinition,
    DefinitionError,
    parse_definition,
    parse_fact,
)

BASE = """\
id: essai
name: "essai"
dates: {start: 2026-10-14, end: 2027-01-31}
anchor: {kind: wave}
goal: {programme: sophia}
targeting:
  horizon_days: 90
  criteria:
    - {kind: alive}
    - {kind: age, min_years: 18}
cascade:
  - id: call
    channel: phone
    start_days: 0
    requires: [phone, priority]
    template: call.md.j2
    outcomes:
      enrolled_on_call: {effect: goal}
      will_enrol_online: {effect: end_step}
      refused: {effect: end_step}
      callback: {effect: callback}
      no_answer: {effect: retry}
      busy: {effect: retry}
      voicemail: {effect: retry}
      wrong_number: {effect: end_step}
      deceased: {effect: exit}
      objects: {effect: exit}
  - id: mailbox
    channel: mailbox
    start_days: 14
    end_days: 30
    requires: [compte_ameli]
    unless: [reached:call]
    template: mailbox.md.j2
  - id: letter
    channel: letter
    start_days: 35
    not_before: 2026-12-01
    requires: [postal_address]
    unless: [read:mailbox]
    template: letter.html.j2
presentation:
  sender: "Assurance Maladie"
"""


def load(tmp_path: Path, text: str) -> CampaignDefinition:
    path = tmp_path / "campaign.yaml"
    path.write_text(text, encoding="utf-8")
    return parse_definition(path)


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def test_a_wave_with_conditions_and_open_windows_loads(tmp_path: Path) -> None:
    d = load(tmp_path, BASE)
    assert d.dates.start == date(2026, 10, 14) and d.dates.end == date(2027, 1, 31)
    assert d.anchor.kind == "wave"
    assert d.programme is None and d.presentation.programme_name is None
    call, mailbox, letter = d.cascade
    assert call.end_days is None and call.requires == ["phone", "priority"]
    assert mailbox.unless == ["reached:call"]
    assert letter.not_before == date(2026, 12, 1) and letter.unless == ["read:mailbox"]


def test_the_reference_campaign_spells_out_its_anchor(tmp_path: Path) -> None:
    from campaigns.definition.model import DEFINITIONS_DIR

    d = parse_definition(DEFINITIONS_DIR / "sophia_ald8" / "campaign.yaml")
    assert d.anchor.kind == "ald_renewal" and d.dates.end is None
    assert all(s.end_days is not None for s in d.cascade)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("anchor: {kind: wave}\n", "", r"anchor: clé obligatoire manquante"),
        ("dates: {start: 2026-10-14, end: 2027-01-31}\n", "", r"dates: clé obligatoire manquante"),
        ("{kind: wave}", "{kind: someday}", r"anchor.kind: Input should be"),
        ("end: 2027-01-31", "end: 2026-01-31", r"la date de fin précède la date de début"),
        ("{kind: wave}", "{kind: ald_renewal}", r"il faut un critère \{kind: ald_renewal\}"),
        ("{kind: wave}", "{kind: birthday}", r"exact_years"),
        (
            ", end: 2027-01-31}\nanchor: {kind: wave}",
            "}\nanchor: {kind: entry}",
            r"cascade\[0\].end_days: requis quand la campagne",
        ),
        ("[phone, priority]", "[phone, vip]", r"cascade\[0\].requires: .*condition inconnue 'vip'"),
        ("[reached:call]", "[reached:letter]", r"cascade\[1\].unless\[0\]: .*n'existe pas avant"),
        (
            "[read:mailbox]",
            "[read:call]",
            r"cascade\[2\].unless\[0\]: .*canal phone, il faut mailbox",
        ),
        ("[reached:call]", "[reached:mailbox]", r"cascade\[1\].unless\[0\]: 'reached:mailbox'"),
        ("not_before: 2026-12-01", "not_before: season_start", r"paramètre inconnu 'season_start'"),
        ("not_before: 2026-12-01", "not_before: Noël", r"not_before: .*nom de paramètre"),
    ],
)
def test_bad_shape_is_refused_with_where_and_why(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    with pytest.raises(DefinitionError, match=expected):
        load(tmp_path, edit(old, new))


def test_birthday_and_entry_anchors_need_what_they_read(tmp_path: Path) -> None:
    assert load(tmp_path, edit("{kind: wave}", "{kind: entry}")).anchor.kind == "entry"
    # An ald_renewal criterion makes the ald_renewal anchor valid.
    text = edit("{kind: wave}", "{kind: ald_renewal}").replace(
        "    - {kind: age, min_years: 18}\n",
        "    - {kind: ald_renewal, ald_num: 8, icd10_prefixes: [E11], etm_nat: [41]}\n",
    )
    assert load(tmp_path, text).anchor.kind == "ald_renewal"


def test_condition_facts_are_parsed() -> None:
    assert parse_fact("phone") == ("phone", None)
    assert parse_fact("priority") == ("priority", None)
    assert parse_fact("reached:call") == ("reached", "call")
    assert parse_fact("sent:letter_1") == ("sent", "letter_1")
    with pytest.raises(ValueError, match="condition inconnue"):
        parse_fact("seen:call")


def test_a_bad_step_condition_is_located_on_its_line(tmp_path: Path) -> None:
    text = edit("[reached:call]", "[reached:letter]")
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "reached:letter" in t)
    with pytest.raises(DefinitionError) as e:
        load(tmp_path, text)
    assert f"campaign.yaml:{line}: cascade[1].unless[0]: 'reached:letter'" in str(e.value)
