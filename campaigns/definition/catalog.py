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


def _by_id(root: Path) -> dict[str, tuple[Path, CampaignDefinition]]:
    """Every definition under `root` by id; two folders with one id are refused, both named."""
    found: dict[str, tuple[Path, CampaignDefinition]] = {}
    for folder in _folders(root):
        definition = parse_definition(folder / "campaign.yaml")
        if definition.id in found:
            raise DefinitionError(
                f"deux dossiers déclarent la campagne {definition.id!r} : "
                f"{found[definition.id][0]} et {folder} ; renommez l'id de l'un d'eux "
                "ou retirez la copie"
            )
        found[definition.id] = (folder, definition)
    return found


def campaign_by_id(campaign_id: str, *, root: Path | None = None) -> Campaign:
    """A campaign by its id only: what a URL or the ledger names is never read as a path."""
    root = root or DEFINITIONS_DIR
    known = _by_id(root)
    if campaign_id in known:
        folder = known[campaign_id][0]
        return _load_cached(folder.resolve(), _stamp(folder))
    names = ", ".join(known)
    raise DefinitionError(f"no campaign {campaign_id!r} under {root} (known: {names or 'none'})")


def list_campaigns(root: Path | None = None) -> list[CampaignDefinition]:
    """Every campaign definition under `root` (two folders with one id are refused)."""
    root = root or DEFINITIONS_DIR
    return [d for _, d in _by_id(root).values()]
