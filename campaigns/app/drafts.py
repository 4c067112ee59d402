"""Campaigns made and edited in the console: drafts, their check, ready, and new versions.

A draft is text in the ledger (`CampaignDraft`, its files as `DefinitionFile` rows of version 1):
no folder, so the catalogue, the targeting, the tick and dispatch never see it. « Marquer prête »
checks it like `relance campaigns check` and writes version 1 under `data_dir/campaigns/<id>/v1/`
(atomically), where the catalogue finds it. Editing a registered campaign records a new version
effective from a date (tomorrow at the earliest, Paris): written under `v<N>/` with that date,
the catalogue serves it from that day, and the actions planned from then on carry its number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from campaigns.clock import paris_today, utcnow
from campaigns.definition import files as definition_files
from campaigns.definition.catalog import campaign_by_id, list_campaigns
from campaigns.definition.files import (
    ID_PATTERN,
    YAML,
    Checked,
    check_files,
    file_name_problem,
    folder_files,
    materialise,
)
from campaigns.definition.model import DefinitionError
from campaigns.ledger.audit import record
from campaigns.ledger.definition_files import files_of, store_files
from campaigns.ledger.models import Campaign, CampaignDraft, CampaignVersion
from campaigns.ledger.registry import definition_sha256

SKELETON = Path(__file__).resolve().parent.parent / "definition" / "skeleton"
DRAFT, READY = "draft", "ready"


class DraftError(ValueError):
    """A draft or version step refused, with its reason in French (and every problem found)."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


def _taken(session: Session, campaign_id: str, root: Path) -> bool:
    """Whether any campaign, shipped, registered, drafted or written, already has this id."""
    try:
        listing = list_campaigns()
    except DefinitionError as e:  # two folders with one id: which one is meant is unknown
        raise DraftError(str(e)) from None
    return (
        any(d.id == campaign_id for d in listing)
        or any(b.id == campaign_id for b in listing.drafts)
        or session.get(Campaign, campaign_id) is not None
        or session.get(CampaignDraft, campaign_id) is not None
        or (root / campaign_id).exists()
    )


def _skeleton(campaign_id: str, name: str, today: date) -> dict[str, str]:
    files = folder_files(SKELETON)
    files[YAML] = (
        files[YAML]
        .replace("__ID__", campaign_id)
        .replace("__NAME__", name.replace('"', "'"))
        .replace("__START__", today.isoformat())
    )
    return files


def _copy(origin: str, campaign_id: str, name: str) -> dict[str, str]:
    try:
        source = campaign_by_id(origin)
    except DefinitionError:
        raise DraftError(f"{origin} : campagne à copier inconnue") from None
    files = folder_files(source.folder)
    lines = files[YAML].splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("id:"):
            lines[i] = f"id: {campaign_id}\n"
        elif line.startswith("name:") and name:
            lines[i] = f'name: "{name.replace(chr(34), chr(39))}"\n'
    files[YAML] = "".join(lines)
    return files


def create_draft(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    name: str,
    origin: str = "",
    root: Path | None = None,
    now: datetime | None = None,
) -> CampaignDraft:
    """A new draft: a copy of a shipped campaign (`origin`) or the minimal skeleton."""
    now = now or utcnow()
    root = root or definition_files.console_root()
    if not ID_PATTERN.match(campaign_id):
        raise DraftError(
            f"« {campaign_id} » : identifiant de campagne refusé ; minuscules, chiffres et tirets, "
            "commençant par une lettre (2 à 63 caractères)"
        )
    if _taken(session, campaign_id, root):
        raise DraftError(f"{campaign_id} : une campagne porte déjà cet identifiant")
    name = name.strip() or campaign_id
    files = (
        _copy(origin, campaign_id, name)
        if origin
        else _skeleton(campaign_id, name, paris_today(now))
    )
    draft = CampaignDraft(
        campaign_id=campaign_id,
        state=DRAFT,
        origin=origin,
        created_by=actor,
        created_at=now,
        updated_by=actor,
        updated_at=now,
    )
    session.add(draft)
    session.flush()
    store_files(session=session, campaign_id=campaign_id, version=1, files=files, by=actor, now=now)
    record(
        session=session,
        actor=actor,
        action="campaign_draft_create",
        target=campaign_id,
        detail={"origin": origin or "squelette", "files": sorted(files)},
        now=now,
    )
    return draft


def _open_draft(session: Session, campaign_id: str) -> CampaignDraft:
    draft = session.get(CampaignDraft, campaign_id)
    if draft is None:
        raise DraftError(f"{campaign_id} : brouillon inconnu")
    if draft.state != DRAFT:
        raise DraftError(
            f"{campaign_id} : la campagne est prête ; une modification est une nouvelle version"
        )
    return draft


def draft_files(*, session: Session, campaign_id: str) -> dict[str, str]:
    """The files of a draft as last saved (campaign.yaml first)."""
    return files_of(session=session, campaign_id=campaign_id, version=1)


def save_draft_files(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    files: dict[str, str],
    remove: Sequence[str] = (),
    now: datetime | None = None,
) -> dict[str, str]:
    """Save edited or uploaded files of a draft (drop `remove`); all or nothing."""
    now = now or utcnow()
    draft = _open_draft(session, campaign_id)
    problems = [p for name in files if (p := file_name_problem(name)) is not None]
    problems += [f"{name} : fichier inconnu du brouillon" for name in remove if name == YAML]
    if problems:
        raise DraftError("fichiers refusés, rien n'a été enregistré", problems)
    current = draft_files(session=session, campaign_id=campaign_id)
    merged = {k: v for k, v in current.items() if k not in set(remove)}
    # Browsers send textareas with CRLF line ends: keep the files as they are on disk, LF.
    merged.update({k: v.replace("\r\n", "\n") for k, v in files.items()})
    store_files(
        session=session, campaign_id=campaign_id, version=1, files=merged, by=actor, now=now
    )
    draft.updated_by, draft.updated_at = actor, now
    session.add(draft)
    record(
        session=session,
        actor=actor,
        action="campaign_draft_save",
        target=campaign_id,
        detail={"saved": sorted(files), "removed": sorted(remove)},
        now=now,
    )
    return merged


def check_draft(*, session: Session, actor: str, campaign_id: str) -> Checked:
    """Every problem of a draft (file, line, YAML path, in French), as `campaigns check`."""
    if session.get(CampaignDraft, campaign_id) is None:
        raise DraftError(f"{campaign_id} : brouillon inconnu")
    checked = check_files(
        draft_files(session=session, campaign_id=campaign_id), campaign_id=campaign_id
    )
    record(
        session=session,
        actor=actor,
        action="campaign_draft_check",
        target=campaign_id,
        detail={"problems": len(checked.problems)},
    )
    return checked


def mark_ready(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    root: Path | None = None,
    now: datetime | None = None,
) -> CampaignDraft:
    """A valid draft becomes ready: version 1 written where the catalogue and flows find it."""
    now = now or utcnow()
    root = root or definition_files.console_root()
    draft = _open_draft(session, campaign_id)
    files = draft_files(session=session, campaign_id=campaign_id)
    checked = check_files(files, campaign_id=campaign_id)
    if not checked.ok:
        raise DraftError(
            f"{campaign_id} : le brouillon a {len(checked.problems)} problème(s), "
            "il ne peut pas être marqué prêt",
            checked.problems,
        )
    draft.state, draft.ready_at, draft.updated_by, draft.updated_at = READY, now, actor, now
    session.add(draft)
    record(
        session=session,
        actor=actor,
        action="campaign_draft_ready",
        target=campaign_id,
        detail={"files": sorted(files)},
        now=now,
    )
    session.flush()
    # Written last: if the ledger refuses anything above, no folder appears.
    materialise(
        root=root, campaign_id=campaign_id, version=1, effective_on=paris_today(now), files=files
    )
    return draft


def _latest(session: Session, campaign_id: str) -> CampaignVersion | None:
    return session.exec(
        select(CampaignVersion)
        .where(CampaignVersion.campaign_id == campaign_id)
        .order_by(col(CampaignVersion.version).desc())
        .limit(1)
    ).first()


def current_files(*, session: Session, campaign_id: str) -> dict[str, str]:
    """The files of a campaign's latest version: kept in the ledger, else its folder today."""
    latest = _latest(session, campaign_id)
    if latest is not None:
        kept = files_of(session=session, campaign_id=campaign_id, version=latest.version)
        if kept:
            return kept
    return folder_files(campaign_by_id(campaign_id).folder)


def new_version(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    files: dict[str, str],
    effective_on: date,
    root: Path | None = None,
    now: datetime | None = None,
) -> CampaignVersion:
    """An edit of a registered campaign: a new version, effective from a date (tomorrow at best)."""
    now = now or utcnow()
    root = root or definition_files.console_root()
    row = session.get(Campaign, campaign_id)
    if row is None:
        raise DraftError(f"{campaign_id} : campagne inconnue du registre")
    if row.ended_at is not None:
        raise DraftError(f"{campaign_id} : campagne terminée, elle ne change plus")
    tomorrow = paris_today(now) + timedelta(days=1)
    if effective_on < tomorrow:
        raise DraftError(
            f"date d'effet {effective_on:%d/%m/%Y} refusée : au plus tôt demain, "
            f"le {tomorrow:%d/%m/%Y} (les actions du jour suivent la version en cours)"
        )
    latest = _latest(session, campaign_id)
    if latest is not None and effective_on < latest.effective_on:
        raise DraftError(
            f"date d'effet {effective_on:%d/%m/%Y} refusée : la version {latest.version} "
            f"prend effet le {latest.effective_on:%d/%m/%Y}, une nouvelle version vient après"
        )
    files = {k: v.replace("\r\n", "\n") for k, v in files.items()}
    checked = check_files(files, campaign_id=campaign_id)
    if checked.definition is None:
        raise DraftError(
            f"{campaign_id} : la nouvelle version a {len(checked.problems)} problème(s)",
            checked.problems,
        )
    sha = definition_sha256(checked.definition)
    if latest is not None and latest.definition_sha256 == sha:
        raise DraftError(f"{campaign_id} : rien n'a changé depuis la version {latest.version}")
    version = CampaignVersion(
        campaign_id=campaign_id,
        version=(latest.version + 1) if latest else 1,
        definition_sha256=sha,
        effective_on=effective_on,
        recorded_at=now,
        recorded_by=actor,
    )
    session.add(version)
    session.flush()
    store_files(
        session=session,
        campaign_id=campaign_id,
        version=version.version,
        files=files,
        by=actor,
        now=now,
    )
    record(
        session=session,
        actor=actor,
        action="campaign_version_new",
        target=campaign_id,
        detail={
            "version": version.version,
            "effective_on": effective_on.isoformat(),
            "sha256": sha,
        },
        now=now,
    )
    # Written last: if the ledger refuses anything above, no folder appears.
    materialise(
        root=root,
        campaign_id=campaign_id,
        version=version.version,
        effective_on=effective_on,
        files=files,
    )
    return version


def drafts(*, session: Session) -> list[CampaignDraft]:
    """The drafts not yet ready, by id."""
    return list(
        session.exec(
            select(CampaignDraft)
            .where(CampaignDraft.state == DRAFT)
            .order_by(col(CampaignDraft.campaign_id))
        ).all()
    )
