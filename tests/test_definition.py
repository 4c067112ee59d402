"""Campaign folders: the definition is validated, errors say file, line and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.definition.catalog import list_campaigns, load_campaign
from campaigns.definition.model import DEFINITIONS_DIR, DefinitionError, parse_definition

SOPHIA = DEFINITIONS_DIR / "sophia_ald8"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dst = tmp_path / "sophia_ald8"
    shutil.copytree(SOPHIA, dst)
    return dst


def _edit(folder: Path, old: str, new: str) -> None:
    path = folder / "campaign.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_reference_campaign_loads() -> None:
    c = load_campaign("sophia-ald8")
    d = c.definition
    assert d.targeting.horizon_days == 90
    assert [s.id for s in d.cascade] == ["call", "mailbox", "letter"]
    assert sum(d.objectives.values()) == 5540
    assert set(d.targeting.gaps) == {"gap_renal", "gap_dental", "gap_fundus"}
    assert "sophia-ald8" in [x.id for x in list_campaigns()]


def test_unknown_campaign_names_the_known_ones() -> None:
    with pytest.raises(DefinitionError, match=r"connues : .*sophia-ald8"):
        load_campaign("sophia-ald9")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "horizon_days: 90",
            "horizon_day: 90",
            r":16: targeting.horizon_day: clé inconnue \(vouliez-vous dire 'horizon_days' \?\)",
        ),
        (
            "{kind: age, min_years: 18}",
            "{kind: age, min_year: 18}",
            r":19: targeting.criteria\[1\].min_year: clé inconnue",
        ),
        (
            "    start_days: -60",
            "    start_day: -60",
            r"cascade\[0\].start_days: clé obligatoire manquante",
        ),
        (
            "      no_answer: {effect: retry}\n",
            "",
            r"a phone step must map every outcome; missing: \['no_answer'\]",
        ),
        ("channel: letter", "channel: pigeon", r"cascade\[2\].channel: Input should be"),
        ('"75": 980', '"75": -1', r"objectives must be >= 0"),
        ("all_of: [gap_renal", "all_of: [gap_kidney", r"priority names unknown gaps: gap_kidney"),
        ("share: 0.05", "share: 0.8", r"holdout.share"),
        ('start: "08:30"', 'start: "18:30"', r"start must be before end"),
    ],
)
def test_a_bad_definition_is_refused_with_where_and_why(
    folder: Path, old: str, new: str, expected: str
) -> None:
    _edit(folder, old, new)
    with pytest.raises(DefinitionError, match=expected) as e:
        load_campaign(folder)
    assert str(folder / "campaign.yaml") in str(e.value)


def test_invalid_yaml_gives_line_and_column(folder: Path) -> None:
    _edit(folder, "horizon_days: 90", "horizon_days: [90")
    with pytest.raises(DefinitionError, match=r"line \d+, column \d+"):
        load_campaign(folder)


def test_template_with_an_undefined_variable_is_refused_at_load(folder: Path) -> None:
    tpl = folder / "templates" / "mailbox_message.md.j2"
    lines = tpl.read_text(encoding="utf-8").splitlines()
    lines.insert(3, "{{ person.telephone }}")
    tpl.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"mailbox_message.md.j2:4: .*telephone"):
        load_campaign(folder)


def test_template_syntax_error_names_file_and_line(folder: Path) -> None:
    (folder / "templates" / "letter.html.j2").write_text("<p>\n{% if x %}\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"letter.html.j2:\d+: syntaxe du modèle"):
        load_campaign(folder)


def test_missing_template_is_refused(folder: Path) -> None:
    (folder / "templates" / "call_script.md.j2").unlink()
    with pytest.raises(DefinitionError, match=r"call_script\.md\.j2: modèle de l'étape 'call'"):
        load_campaign(folder)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


RAW = yaml.safe_load((SOPHIA / "campaign.yaml").read_text(encoding="utf-8"))
KEY_PATHS = [p for p in _paths(RAW) if isinstance(p[-1], str)]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(KEY_PATHS), suffix=st.sampled_from(["x", "_", "s"]))
def test_any_misspelt_key_is_reported_never_ignored(
    tmp_path: Path, path: tuple[object, ...], suffix: str
) -> None:
    """Renaming any key of the definition is an error naming that key (no silent default)."""
    raw = yaml.safe_load((SOPHIA / "campaign.yaml").read_text(encoding="utf-8"))
    node = raw
    for part in path[:-1]:
        node = node[part]
    key = path[-1]
    if isinstance(node, dict) and (
        "objectives" in path
        or "gap_labels" in path
        or path[:2] == ("targeting", "gaps")
        or ("outcomes" in path and len(path) == 4)
    ):
        # Free-form mappings (échelons, gap names, outcome codes) are checked by other rules.
        return
    node[f"{key}{suffix}"] = node.pop(key)
    out = tmp_path / "campaign.yaml"
    out.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DefinitionError) as e:
        parse_definition(out)
    assert f"{key}{suffix}" in str(e.value) or str(key) in str(e.value)
