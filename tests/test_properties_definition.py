"""Properties of the campaign loader: a damaged folder gives a DefinitionError saying where."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.definition.catalog import load_folder
from campaigns.definition.model import DEFINITIONS_DIR, DefinitionError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOURCE = DEFINITIONS_DIR / "sophia_ald8"
ORIGINAL: dict[str, Any] = yaml.safe_load((SOURCE / "campaign.yaml").read_text())
# Mappings whose keys are data (échelons, gap names), not field names.
FREE = ("objectives", "gap_labels", "gaps", "outcomes")


def mappings(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every mapping whose keys are field names."""
    out = []
    if isinstance(node, dict):
        if not (path and path[-1] in FREE):
            out.append(path)
        for k, v in node.items():
            out += mappings(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += mappings(v, (*path, i))
    return out


PATHS = [p for p in mappings(ORIGINAL) if p == () or isinstance(p[-1], str)]


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def load_error(folder: Path) -> str:
    with pytest.raises(DefinitionError) as e:  # nothing else may escape
        load_folder(folder)
    return str(e.value)


def copy(d: str) -> Path:
    folder = Path(d) / "campaign"
    shutil.copytree(SOURCE, folder)
    return folder


def has_place(message: str, path: Path) -> bool:
    """The message names the file with a line, or a YAML path."""
    return str(path) in message and bool(
        re.search(rf"{re.escape(str(path))}:\s?(line )?\d+", message)
    )


@SETTINGS
@given(st.sampled_from(PATHS), st.data())
def test_a_mistyped_or_unknown_key_is_located(path: tuple[Any, ...], data: st.DataObject) -> None:
    doc = yaml.safe_load((SOURCE / "campaign.yaml").read_text())
    node = at(doc, path)
    mutation = data.draw(st.sampled_from(["typo", "unknown"]) if node else st.just("unknown"))
    if mutation == "typo":
        key = data.draw(st.sampled_from(sorted(node)))
        node[key + data.draw(st.sampled_from(["s", "_", "x"]))] = node.pop(key)
    else:
        node[data.draw(st.sampled_from(["colour", "zz", "prioritry"]))] = 1
    with tempfile.TemporaryDirectory() as d:
        folder = copy(d)
        (folder / "campaign.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
        message = load_error(folder)
        assert has_place(message, folder / "campaign.yaml"), message
        assert "clé inconnue" in message, message


@SETTINGS
@given(st.sampled_from(PATHS), st.data())
def test_a_deleted_key_or_a_wrong_type_is_refused_or_harmless(
    path: tuple[Any, ...], data: st.DataObject
) -> None:
    doc = yaml.safe_load((SOURCE / "campaign.yaml").read_text())
    node = at(doc, path)
    if not node:
        return
    key = data.draw(st.sampled_from(sorted(node)))
    if data.draw(st.booleans(), label="delete"):
        del node[key]
    else:
        node[key] = data.draw(st.sampled_from([[1, 2], {"a": 1}, "texte", -3, None, 2.5]))
    with tempfile.TemporaryDirectory() as d:
        folder = copy(d)
        target = folder / "campaign.yaml"
        target.write_text(yaml.safe_dump(doc, allow_unicode=True))
        try:
            load_folder(folder)  # an optional key, or a value of an acceptable type
        except DefinitionError as e:
            if "modèle de l'étape" in str(e):  # a template name that is no file: named as such
                assert str(folder / "templates") in str(e), str(e)
                return
            assert str(target) in str(e)
            assert has_place(str(e), target) or re.search(r": \S+: ", str(e)), str(e)


@SETTINGS
@given(st.data())
def test_broken_yaml_syntax_names_line_and_column(data: st.DataObject) -> None:
    lines = (SOURCE / "campaign.yaml").read_text().splitlines()
    i = data.draw(st.integers(0, len(lines) - 1))
    junk = data.draw(st.sampled_from(["key: [unclosed", "\tindent: tab", "a: b: c: {", "- ]"]))
    lines.insert(i, junk)
    with tempfile.TemporaryDirectory() as d:
        folder = copy(d)
        target = folder / "campaign.yaml"
        target.write_text("\n".join(lines) + "\n")
        try:
            load_folder(folder)
        except DefinitionError as e:
            assert str(target) in str(e) and re.search(r"line \d+|:\d+", str(e)), str(e)


TEMPLATES = sorted(p.name for p in (SOURCE / "templates").iterdir())


@SETTINGS
@given(st.sampled_from(TEMPLATES), st.data())
def test_an_undefined_variable_names_template_and_line(name: str, data: st.DataObject) -> None:
    lines = (SOURCE / "templates" / name).read_text().splitlines()
    # Outside any block: before the first line, or after the last one.
    i = data.draw(st.sampled_from([0, len(lines)]))
    var = data.draw(st.sampled_from(["nom_inconnu", "member.inconnu", "campaign.nope"]))
    lines.insert(i, f"{{{{ {var} }}}}")
    with tempfile.TemporaryDirectory() as d:
        folder = copy(d)
        (folder / "templates" / name).write_text("\n".join(lines) + "\n")
        message = load_error(folder)
        assert f"{name}:{i + 1}:" in message, message
        assert f"« {var.split('.')[-1]} »" in message, message  # Jinja's words, in French
