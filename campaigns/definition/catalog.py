"""Campaign folders: a validated definition and its checked templates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment

from campaigns.definition import files as console_files
from campaigns.definition.model import (
    DEFINITIONS_DIR,
    CampaignDefinition,
    DefinitionError,
    parse_definition,
)
from campaigns.definition.rendering import check_templates, template_environment


@dataclass(frozen=True)
class Campaign:
    """A loaded campaign: its definition, its folder and the environment of its templates."""

    definition: CampaignDefinition
    folder: Path
    env: Environment

    @property
    def id(self) -> str:
        return self.definition.id


def load_folder(folder: Path) -> Campaign:
    """Load and check one campaign folder (campaign.yaml + templates/)."""
    definition = parse_definition(folder / "campaign.yaml")
    templates = folder / "templates"
    env = template_environment(templates)
    check_templates(definition, env, templates)
    return Campaign(definition=definition, folder=folder, env=env)


def _folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "campaign.yaml").is_file())


@lru_cache(maxsize=64)
def _load_cached(folder: Path, stamp: float) -> Campaign:
    return load_folder(folder)


def _stamp(folder: Path) -> float:
    """Latest modification in the folder, so an edited campaign is reloaded."""
    return max(p.stat().st_mtime for p in [folder, *folder.rglob("*")])


def is_explicit_path(arg: str | Path) -> bool:
    """A campaign argument names a folder only when it says so (`./x`, `../x`, `/x`, `a/b`)."""
    return isinstance(arg, Path) or "/" in arg


def load_campaign(id_or_path: str | Path, *, root: Path | None = None) -> Campaign:
    """A campaign by its id (among the folders under `root`), or by an explicit folder path.

    A folder of the working directory named like an id is never read instead of the campaign.
    """
    if not is_explicit_path(id_or_path):
        return campaign_by_id(str(id_or_path), root=root)
    path = Path(id_or_path)
    if not path.is_dir():
        raise DefinitionError(f"{path}: aucun dossier de campagne à ce chemin")
    if not (path / "campaign.yaml").is_file():
        # Checked before anything walks the folder: `/` or `~/` must not be scanned.
        raise DefinitionError(f"{path}: pas de campaign.yaml dans ce dossier de campagne")
    folder = path.resolve()
    return _load_cached(folder, _stamp(folder))


# A top-level `id:` line: read without validating the rest, so a broken draft still has its id.
_ID_LINE = re.compile(r"""^id:[ \t]*["']?([A-Za-z0-9_.-]+)["']?[ \t]*(?:#.*)?$""", re.MULTILINE)


@dataclass(frozen=True)
class BrokenDraft:
    """A campaign folder that does not load: its id if readable, and its error (file, line)."""

    folder: Path
    id: str | None
    error: str


@dataclass(frozen=True)
class Listing:
    """The valid campaigns (iterated) and, apart, the broken drafts with their errors."""

    campaigns: list[CampaignDefinition]
    drafts: list[BrokenDraft]

    def __iter__(self) -> Iterator[CampaignDefinition]:
        return iter(self.campaigns)

    def __len__(self) -> int:
        return len(self.campaigns)


@lru_cache(maxsize=256)
def _read_id(path: Path, stamp: float) -> str | None:
    """The `id:` of a campaign.yaml, tolerant: the rest of the file may be anything."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError:
        return None
    found = _ID_LINE.search(text)
    return found.group(1) if found else None


def _index(root: Path) -> dict[str | None, list[Path]]:
    """The folders under `root` by the id they declare (None: no readable id)."""
    index: dict[str | None, list[Path]] = {}
    for folder in _folders(root):
        path = folder / "campaign.yaml"
        index.setdefault(_read_id(path, path.stat().st_mtime), []).append(folder)
    return index


def _catalogue(root: Path | None) -> tuple[Path, dict[str | None, list[Path]]]:
    """The folders by id: the shipped ones, and by default the console's versions in effect.

    A version written by the console (a campaign made in the browser, or a new version of a
    shipped one, from its date) takes the place of the shipped folder of its id. An explicit
    `root` reads that folder only.
    """
    if root is not None:
        return root, _index(root)
    index = _index(DEFINITIONS_DIR)
    for campaign_id, folder in console_files.effective_folders(
        console_files.console_root()
    ).items():
        index[campaign_id] = [folder]
    return DEFINITIONS_DIR, index


def _ambiguous(campaign_id: str, folders: list[Path]) -> DefinitionError:
    return DefinitionError(
        f"deux dossiers déclarent la campagne {campaign_id!r} : "
        f"{folders[0]} et {folders[1]} ; renommez l'id de l'un d'eux ou retirez la copie"
    )


def _load_indexed(campaign_id: str, folder: Path) -> Campaign:
    """The full validation of one folder, only when its campaign is asked for."""
    campaign = _load_cached(folder.resolve(), _stamp(folder))
    if campaign.id != campaign_id:
        raise DefinitionError(
            f"{folder / 'campaign.yaml'}: l'id lu ({campaign_id!r}) diffère de l'id validé "
            f"({campaign.id!r})"
        )
    return campaign


def campaign_by_id(campaign_id: str, *, root: Path | None = None) -> Campaign:
    """A campaign by its id only: what a URL or the ledger names is never read as a path."""
    root, index = _catalogue(root)
    folders = index.get(campaign_id, [])
    if len(folders) > 1:
        raise _ambiguous(campaign_id, folders)
    if folders:
        return _load_indexed(campaign_id, folders[0])
    names = ", ".join(sorted(k for k in index if k is not None))
    raise DefinitionError(
        f"aucune campagne {campaign_id!r} dans {root} (connues : {names or 'aucune'})"
    )


def list_campaigns(root: Path | None = None) -> Listing:
    """Every valid campaign under `root`, and apart the drafts that do not load.

    Two folders with one id are refused: which one is meant cannot be guessed.
    """
    _, index = _catalogue(root)
    campaigns: list[CampaignDefinition] = []
    drafts: list[BrokenDraft] = []
    for campaign_id, folders in index.items():
        if campaign_id is not None and len(folders) > 1:
            raise _ambiguous(campaign_id, folders)
        for folder in folders:
            if campaign_id is None:
                try:
                    parse_definition(folder / "campaign.yaml")
                    error = f"{folder / 'campaign.yaml'}: pas de ligne « id: » lisible"
                except DefinitionError as e:
                    error = str(e)
                drafts.append(BrokenDraft(folder=folder, id=None, error=error))
                continue
            try:
                campaigns.append(_load_indexed(campaign_id, folder).definition)
            except DefinitionError as e:
                drafts.append(BrokenDraft(folder=folder, id=campaign_id, error=str(e)))
    campaigns.sort(key=lambda d: d.id)
    drafts.sort(key=lambda d: str(d.folder))
    return Listing(campaigns=campaigns, drafts=drafts)
