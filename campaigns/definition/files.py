"""A campaign's files as text: read from a folder, checked, and written where flows find them.

A campaign made or edited in the console lives in the ledger as text (one row per file and
version). Once ready (or for a new version, once recorded) its files are written under
`console_root()/<id>/v<N>/` with an `effective_on` file: written in a hidden folder then renamed,
so a reader sees a whole version or none. The catalogue serves, for an id, the highest version
whose date has come, in place of the shipped folder of the same id.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from jinja2 import TemplateSyntaxError

from campaigns.clock import paris_today
from campaigns.definition.jinja_fr import jinja_message_fr
from campaigns.definition.model import CampaignDefinition, DefinitionError, parse_definition
from campaigns.definition.rendering import template_environment, template_problems
from campaigns.settings import get_settings
from relance_fs import private_dir

YAML = "campaign.yaml"
EFFECTIVE = "effective_on"
# A template's name: a plain file under templates/, nothing that walks out of the folder.
_TEMPLATE = re.compile(r"^templates/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,120}$")
_VERSION = re.compile(r"^v(\d{1,6})$")
_ID_LINE = re.compile(r"^id:", re.MULTILINE)
ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,62}$")


def console_root() -> Path:
    """Where the console's campaign versions are written: RELANCE_DATA_DIR/campaigns."""
    return get_settings().data_dir / "campaigns"


def file_name_problem(name: str) -> str | None:
    """Why a file name cannot be part of a campaign (None: it can)."""
    if name == YAML or (_TEMPLATE.match(name) and ".." not in name):
        return None
    return (
        f"{name}: nom de fichier refusé ; seuls « campaign.yaml » et « templates/<nom> » "
        "(lettres, chiffres, point, tiret) sont admis"
    )


def folder_files(folder: Path) -> dict[str, str]:
    """campaign.yaml and every template of a campaign folder, as text by relative path."""
    out = {YAML: (folder / YAML).read_text(encoding="utf-8")}
    templates = folder / "templates"
    if templates.is_dir():
        for path in sorted(templates.iterdir()):
            if path.is_file():
                out[f"templates/{path.name}"] = path.read_text(encoding="utf-8")
    return out


@dataclass(frozen=True)
class Checked:
    """A check of a campaign's files: the definition when it is valid, else every problem."""

    definition: CampaignDefinition | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.definition is not None and not self.problems


def write_files(folder: Path, files: dict[str, str]) -> None:
    """A campaign's files (campaign.yaml, templates/…) written under `folder`."""
    (folder / "templates").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def _id_line(text: str) -> int | None:
    found = _ID_LINE.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else None


def check_files(files: dict[str, str], *, campaign_id: str) -> Checked:
    """Every problem of these files, each with its file, line and YAML path, in French."""
    problems = [p for name in files if (p := file_name_problem(name)) is not None]
    if problems:
        return Checked(definition=None, problems=problems)
    if YAML not in files:
        return Checked(definition=None, problems=[f"{YAML}: fichier manquant"])
    with tempfile.TemporaryDirectory(prefix="relance-check-") as tmp:
        folder = Path(tmp)
        write_files(folder, files)
        definition: CampaignDefinition | None = None
        try:
            definition = parse_definition(folder / YAML)
        except DefinitionError as e:
            problems.append(str(e))
        env = template_environment(folder / "templates")
        broken: set[str] = set()
        for name in sorted(n for n in files if n != YAML):
            try:
                env.parse(files[name], name=name)
            except TemplateSyntaxError as e:
                broken.add(name.removeprefix("templates/"))
                problems.append(
                    f"{folder / name}:{e.lineno}: syntaxe du modèle : {jinja_message_fr(e.message)}"
                )
        if definition is not None:
            if definition.id != campaign_id:
                line = _id_line(files[YAML])
                problems.append(
                    f"{folder / YAML}:{line}: id: l'identifiant doit rester « {campaign_id} » "
                    f"(lu : « {definition.id} ») ; pour une autre campagne, créez un brouillon"
                )
            problems += template_problems(
                definition, env, folder / "templates", skip=frozenset(broken)
            )
        # The temporary folder means nothing to the reader: name the file as in the form.
        problems = [p.replace(f"{folder}{os.sep}", "") for p in problems]
    return Checked(definition=None if problems else definition, problems=problems)


def materialise(
    *, root: Path, campaign_id: str, version: int, effective_on: date, files: dict[str, str]
) -> Path:
    """Write one version's files under root/<id>/v<N>/, whole or not at all."""
    if not ID_PATTERN.match(campaign_id):
        raise DefinitionError(f"{campaign_id}: identifiant de campagne refusé")
    for name in files:
        if (problem := file_name_problem(name)) is not None:
            raise DefinitionError(problem)
    home = private_dir(root / campaign_id)
    final = home / f"v{version}"
    if final.exists():
        raise DefinitionError(f"{final}: cette version est déjà écrite")
    tmp = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=home))
    write_files(tmp, files)
    (tmp / EFFECTIVE).write_text(effective_on.isoformat(), encoding="utf-8")
    os.replace(tmp, final)  # atomic: the catalogue never sees half a version
    return final


def effective_folders(root: Path, today: date | None = None) -> dict[str, Path]:
    """For each console-made campaign, the folder of its version in effect today."""
    today = today or paris_today()
    out: dict[str, Path] = {}
    if not root.is_dir():
        return out
    for home in sorted(root.iterdir()):
        if not home.is_dir() or not ID_PATTERN.match(home.name):
            continue
        best: tuple[int, Path] | None = None
        for folder in home.iterdir():
            m = _VERSION.match(folder.name)
            if not m or not (folder / YAML).is_file():
                continue
            try:
                since = date.fromisoformat((folder / EFFECTIVE).read_text().strip())
            except (OSError, ValueError):
                continue
            if since <= today and (best is None or int(m[1]) > best[0]):
                best = (int(m[1]), folder)
        if best is not None:
            out[home.name] = best[1]
    return out
