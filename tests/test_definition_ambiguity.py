"""Definitions are unambiguous (issue 13, failure 5): one id per folder, no key given twice."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campaigns.definition.catalog import campaign_by_id, list_campaigns, load_campaign
from campaigns.definition.model import DEFINITIONS_DIR, DefinitionError, parse_definition
from campaigns.definition.offers import CATALOGUE, load_catalogue
from console.cli import app
from tests.extracts import Extract

SOPHIA = DEFINITIONS_DIR / "sophia_ald8"


def _copy(root: Path, name: str, *, edit: tuple[str, str] | None = None) -> Path:
    dst = root / name
    shutil.copytree(SOPHIA, dst)
    if edit:
        path = dst / "campaign.yaml"
        text = path.read_text(encoding="utf-8")
        assert edit[0] in text, edit[0]
        path.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    return dst


def test_two_folders_with_one_id_are_refused_naming_both(tmp_path: Path) -> None:
    real = _copy(tmp_path, "sophia_ald8")
    # The copy sorts first: before the fix it silently replaced the real campaign.
    copy = _copy(tmp_path, "a_copy_of_sophia", edit=('name: "sophia', 'name: "COPIE sophia'))
    for load in (
        lambda: campaign_by_id("sophia-ald8", root=tmp_path),
        lambda: load_campaign("sophia-ald8", root=tmp_path),
        lambda: list_campaigns(tmp_path),
    ):
        with pytest.raises(DefinitionError) as e:
            load()
        assert str(real) in str(e.value) and str(copy) in str(e.value)
        assert "sophia-ald8" in str(e.value)


def test_a_folder_named_like_an_id_is_not_read_instead_of_the_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy(tmp_path, "sophia-ald8", edit=("horizon_days: 90", "horizon_days: 7"))
    monkeypatch.chdir(tmp_path)
    assert load_campaign("sophia-ald8").definition.targeting.horizon_days == 90
    assert load_campaign("./sophia-ald8").definition.targeting.horizon_days == 7
    assert load_campaign(str(tmp_path / "sophia-ald8")).definition.targeting.horizon_days == 7
    with pytest.raises(DefinitionError, match="aucune campagne 'sophia_ald8'"):
        load_campaign("sophia_ald8")
    with pytest.raises(DefinitionError, match="aucun dossier de campagne"):
        load_campaign("./nowhere")


def test_the_cli_reads_the_campaign_not_a_folder_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sophia-ald8").mkdir()
    (tmp_path / "sophia-ald8" / "campaign.yaml").write_text("id: impostor\n")
    Extract().person("A").write(tmp_path / "x")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        app,
        ["target", "sophia-ald8", "--extract", "x", "--as-of", "2026-03-02", "--output", "t.csv"],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t.csv").read_text().startswith("ben_nir_psa,ben_rng_gem,eligible")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("horizon_days: 90\n", "horizon_days: 90\n  horizon_days: 30\n", "horizon_days"),
        ("programme: sophia\n\ngoal:", "programme: sophia\nprogramme: x\n\ngoal:", "programme"),
        ("{kind: age, min_years: 18}", "{kind: age, min_years: 18, min_years: 65}", "min_years"),
    ],
    ids=["nested", "top-level", "flow-mapping"],
)
def test_a_duplicate_yaml_key_names_both_lines(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    folder = _copy(tmp_path, "c", edit=(old, new))
    path = folder / "campaign.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    at = [i + 1 for i, line in enumerate(lines) if re.search(rf"^\s*{key}:|[{{,] {key}:", line)]
    with pytest.raises(DefinitionError) as e:
        parse_definition(path)
    message = str(e.value)
    assert str(path) in message and f"{key!r}" in message and "en double" in message
    first, second = re.search(r"lignes (\d+) et (\d+)", message).groups()  # type: ignore[union-attr]
    assert int(first) in at and int(second) in at


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    from campaigns.definition.model import load_yaml

    doc = "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n"
    assert load_yaml(tmp_path / "a.yaml", doc) == {
        "base": {"x": 1, "y": 2},
        "other": {"x": 1, "y": 3},
    }


def test_a_duplicate_key_in_the_offers_catalogue_names_both_lines(tmp_path: Path) -> None:
    text = CATALOGUE.read_text(encoding="utf-8")
    bad = tmp_path / "catalogue.yaml"
    bad.write_text(
        text.replace(
            "    section: Régulation\n", "    section: Régulation\n    section: Prévention\n", 1
        ),
        encoding="utf-8",
    )
    with pytest.raises(
        DefinitionError, match=r"catalogue.yaml:\d+: clé 'section' en double \(lignes \d+ et \d+\)"
    ):
        load_catalogue(bad)
