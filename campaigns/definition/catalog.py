"""Campaign folders: a validated definition and its checked templates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment

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


def load_campaign(id_or_path: str | Path, *, root: Path = DEFINITIONS_DIR) -> Campaign:
    """A campaign by its id (among the folders under `root`) or by its folder path."""
    path = Path(id_or_path)
    if path.is_dir():
        folder = path.resolve()
        return _load_cached(folder, _stamp(folder))
    return campaign_by_id(str(id_or_path), root=root)


def campaign_by_id(campaign_id: str, *, root: Path = DEFINITIONS_DIR) -> Campaign:
    """A campaign by its id only: what a URL or the ledger names is never read as a path."""
    for folder in _folders(root):
        definition = parse_definition(folder / "campaign.yaml")
        if definition.id == campaign_id:
            return _load_cached(folder.resolve(), _stamp(folder))
    known = ", ".join(parse_definition(f / "campaign.yaml").id for f in _folders(root))
    raise DefinitionError(f"no campaign {campaign_id!r} under {root} (known: {known or 'none'})")


def list_campaigns(root: Path = DEFINITIONS_DIR) -> list[CampaignDefinition]:
    """Every campaign definition under `root`."""
    return [parse_definition(f / "campaign.yaml") for f in _folders(root)]
