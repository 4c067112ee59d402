"""`relance campaigns`: list, show, check, schedule, launch, runs, pause, resume and end.

Every step goes through `campaigns.app.lifecycle` or `campaigns.app.scheduling`, which audit
it under `--by`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from sqlmodel import Session

    from campaigns.app.scheduler import Scheduler
    from campaigns.definition.model import CampaignDefinition


app = typer.Typer(
    help="Les campagnes : état, brouillons, vérification, planification, lancement, "
    "exécutions, pause, reprise, fin.",
    no_args_is_help=True,
)
out, err = Console(), Console(stderr=True)
BY_VIEW = typer.Option("cli", "--by", help="Qui consulte (journal d'audit).")
BY_ACT = typer.Option(..., "--by", help="Qui prend la décision (journal d'audit).")


def _fail(message: str) -> NoReturn:
    err.print(f"[red]erreur :[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def _step() -> Iterator[Session]:
    """A session whose refused step ends the command with its reason (exit code 2)."""
    from campaigns.app import drafts as drafts_uc  # heavy: domain core
    from campaigns.app import lifecycle as uc  # heavy: domain core
    from campaigns.app.scheduler import SchedulingError  # heavy: domain core
    from campaigns.definition.model import DefinitionError  # heavy: domain core
    from campaigns.ledger.db import get_engine, session_scope  # heavy: domain core

    try:
        with session_scope(get_engine()) as s:
            yield s
    except drafts_uc.DraftError as e:
        _fail("\n".join([str(e), *e.problems]))
    except (uc.LifecycleError, DefinitionError, SchedulingError) as e:
        _fail(str(e))


def _scheduler() -> Scheduler | None:
    from flows.scheduling import scheduler_from_settings  # heavy optional dependency (prefect)

    return scheduler_from_settings()


def _d(day: date | None) -> str:
    return day.strftime("%d/%m/%Y") if day else "—"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "—"


@app.command(name="list")
def list_cmd(by: str = BY_VIEW) -> None:
    """Chaque campagne avec son état, ses dates et sa prochaine étape."""
    from campaigns.app import lifecycle as uc  # heavy: domain core

    with _step() as s:
        views = uc.campaign_overviews(session=s, actor=by)
    t = Table("campagne", "état", "début", "fin", "membres", "prochaine étape")
    for v in views:
        t.add_row(
            escape(v.id),
            v.state_label,
            _d(v.start),
            _d(v.end),
            str(sum(v.members.values())),
            escape(v.next_step),
        )
    out.print(t)


@app.command()
def show(
    campaign: str = typer.Argument(..., help="L'identifiant de la campagne."), by: str = BY_VIEW
) -> None:
    """Une campagne : état, dates, effectifs, versions de sa définition, prochaine étape."""
    from campaigns.app import lifecycle as uc  # heavy: domain core

    with _step() as s:
        v = uc.campaign_overview(session=s, actor=by, campaign_id=campaign)
    lines = [
        f"{v.id} — {v.name}",
        f"état : {v.state_label}",
        f"dates : du {_d(v.start)} au {_d(v.end)}"
        if v.end
        else f"dates : depuis le {_d(v.start)}, sans date de fin",
        f"membres : {_counts(v.members)}",
        f"actions : {_counts(v.actions)}",
    ]
    if v.versions:
        lines.append(
            "versions : "
            + " ; ".join(f"v{n} depuis le {_d(day)} ({sha})" for n, day, sha in v.versions)
        )
    if v.by_version:
        lines.append(
            "actions par version : "
            + ", ".join(
                f"{'v' + str(n) if n is not None else 'avant versions'} : {c}"
                for n, c in sorted(v.by_version.items(), key=lambda x: x[0] or 0)
            )
        )
    if v.error:
        lines.append(f"erreur : {v.error}")
    lines.append(f"prochaine étape : {v.next_step}")
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
def check(
    campaign: str = typer.Argument(..., help="Un identifiant, ou un dossier (./dossier)."),
    extract: Path | None = typer.Option(None, "--extract", help="Dossier de l'extrait."),
    as_of: str | None = typer.Option(None, "--as-of", help="Date du ciblage (AAAA-MM-JJ)."),
) -> None:
    """Vérifier une définition (fichier, ligne, chemin YAML) ; avec un extrait, l'audience."""
    from campaigns.definition.catalog import load_campaign  # heavy: domain core
    from campaigns.definition.model import DefinitionError  # heavy: domain core

    if (extract is None) != (as_of is None):
        _fail("--extract et --as-of vont ensemble : donnez les deux, ou aucun")
    day: date | None = None
    if as_of is not None:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            _fail(f"--as-of {as_of!r} n'est pas une date (AAAA-MM-JJ)")
    try:
        loaded = load_campaign(campaign)
    except (DefinitionError, FileNotFoundError, KeyError) as e:
        _fail(str(e))
    d = loaded.definition
    out.print(f"{d.id} : définition valide ({loaded.folder})", markup=False, highlight=False)
    if extract is None or day is None:
        return
    # heavy optional dependency: DuckDB and pyarrow load only when the audience is counted.
    from targeting.engine import run_targeting, table_specs, tables_needed  # heavy: domain core

    # heavy optional dependency: as above.
    from targeting.extract import ExtractError, check_extract  # heavy: domain core

    try:
        problems = check_extract(
            extract, tables_needed(d.targeting), specs=table_specs(d.targeting)
        )
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            _fail(f"{len(errors)} erreur(s) dans l'extrait, dont : {errors[0]}")
        table = run_targeting(rule=d.targeting, extract=extract, as_of=day, include_ineligible=True)
    except (ExtractError, FileNotFoundError, KeyError) as e:
        _fail(str(e))
    _audience(table.select(["eligible", "priority", "echelon", "reasons"]).to_pylist(), day, d)


def _audience(rows: list[dict[str, object]], day: date, definition: CampaignDefinition) -> None:
    """The dry run's counts (the preview's): eligible per échelon, the reasons of the others."""
    from campaigns.app.preview import audience_counts  # heavy: domain core

    a = audience_counts(rows, day, definition)
    out.print(f"audience au {_d(day)} : {a.eligible} éligible(s) sur {a.insured}", markup=False)
    for row in a.per_echelon:
        out.print(f"  échelon {row.echelon} : {row.eligible}", markup=False)
    for r in a.reasons:
        out.print(f"  non éligibles, {r.label} ({r.code}) : {r.n}", markup=False, highlight=False)


@app.command()
def pause(campaign: str = typer.Argument(...), by: str = BY_ACT) -> None:
    """Mettre une campagne en pause : plus aucune action nouvelle, rien de perdu."""
    from campaigns.app import lifecycle as uc  # heavy: domain core

    with _step() as s:
        uc.pause_campaign(session=s, actor=by, campaign_id=campaign, scheduler=_scheduler())
    out.print(
        f"{campaign} en pause par {by} : les actions en attente sont retenues jusqu'à la reprise",
        markup=False,
    )


@app.command()
def resume(campaign: str = typer.Argument(...), by: str = BY_ACT) -> None:
    """Reprendre une campagne en pause : le prochain passage reprend où elle s'était arrêtée."""
    from campaigns.app import lifecycle as uc  # heavy: domain core

    with _step() as s:
        uc.resume_campaign(session=s, actor=by, campaign_id=campaign, scheduler=_scheduler())
    out.print(f"{campaign} reprise par {by}", markup=False)


@app.command()
def end(
    campaign: str = typer.Argument(...),
    by: str = BY_ACT,
    yes: bool = typer.Option(False, "--yes", help="Confirmer la fin (irréversible)."),
) -> None:
    """Terminer une campagne : ce qui attend est annulé (campagne terminée), les membres sortent."""
    from campaigns.app import lifecycle as uc  # heavy: domain core
    from campaigns.clock import paris_today  # heavy: domain core

    if not yes:
        _fail(f"terminer {campaign} est irréversible : ajoutez --yes pour confirmer")
    with _step() as s:
        counts = uc.end_campaign(
            session=s,
            actor=by,
            campaign_id=campaign,
            today=paris_today(),
            scheduler=_scheduler(),
        )
    out.print(
        f"{campaign} terminée par {by} : "
        f"{counts['cancelled_campaign_ended']} action(s) annulée(s), "
        f"{counts['left_campaign_ended']} membre(s) sorti(s)",
        markup=False,
    )


@app.command()
def schedule(
    campaign: str = typer.Argument(None, help="La campagne (absente avec --all)."),
    every: bool = typer.Option(False, "--all", help="Toutes les campagnes prêtes ou en cours."),
    by: str = BY_ACT,
) -> None:
    """Créer ou mettre à jour les déploiements Prefect de la campagne (heures de Paris)."""

    from campaigns.app.scheduler import SchedulingError, describe_next  # heavy: domain core
    from campaigns.app.scheduling import schedule_campaign  # heavy: domain core
    from campaigns.definition.catalog import list_campaigns, load_campaign  # heavy: domain core
    from campaigns.definition.model import DefinitionError  # heavy: domain core

    if every == (campaign is not None):
        _fail("donnez une campagne, ou --all, pas les deux")
    scheduler = _scheduler()
    try:
        definitions = list(list_campaigns()) if every else [load_campaign(campaign).definition]
    except DefinitionError as e:
        _fail(str(e))
    for definition in definitions:
        with _step() as s:
            try:
                done = schedule_campaign(
                    session=s, actor=by, definition=definition, scheduler=scheduler
                )
            except SchedulingError as e:
                if not every:
                    raise
                err.print(f"{definition.id} : {e}", markup=False)
                continue
        out.print(f"{definition.id} :", markup=False)
        for d in done:
            state = "actif" if d.active else "en pause"
            out.print(
                f"  {d.name} ({state}), prochaine exécution {describe_next(d.next_run)}",
                markup=False,
            )


@app.command()
def launch(campaign: str = typer.Argument(...), by: str = BY_ACT) -> None:
    """Lancer la journée de la campagne tout de suite (une exécution Prefect)."""

    from campaigns.app.scheduler import describe_next  # heavy: domain core
    from campaigns.app.scheduling import launch_day  # heavy: domain core

    with _step() as s:
        done = launch_day(session=s, actor=by, campaign_id=campaign, scheduler=_scheduler())
    out.print(
        f"journée de {campaign} lancée (exécution {done.run_id}) ; "
        f"prochaine exécution planifiée {describe_next(done.next_run)}",
        markup=False,
    )
    if done.url:
        out.print(f"suivre : {done.url}", markup=False)


@app.command()
def runs(
    campaign: str = typer.Argument(...),
    limit: int = typer.Option(20, "--limit", help="Combien d'exécutions, les plus récentes."),
) -> None:
    """Les exécutions de la campagne : état, début, durée, erreurs."""

    from campaigns.app.scheduling import campaign_runs  # heavy: domain core
    from campaigns.clock import PARIS  # heavy: domain core

    with _step() as s:
        seen = campaign_runs(session=s, campaign_id=campaign, scheduler=_scheduler(), limit=limit)
    if not seen:
        out.print(f"{campaign} : aucune exécution", markup=False)
    table = Table("flux", "état", "début (Paris)", "durée", "erreur")
    for r in seen:
        start = r.start.astimezone(PARIS).strftime("%d/%m/%Y %H:%M") if r.start else "—"
        took = f"{r.duration.total_seconds():.0f} s" if r.duration else "—"
        table.add_row(escape(r.deployment), r.state_label, start, took, escape(r.message or ""))
    if seen:
        out.print(table)


@app.command()
def draft(
    campaign: str = typer.Argument(..., help="L'identifiant du brouillon."),
    by: str = BY_ACT,
    origin: str = typer.Option("", "--from", help="Copier cette campagne (sinon : squelette)."),
    name: str = typer.Option("", "--name", help="Le nom de la nouvelle campagne."),
    ready: bool = typer.Option(False, "--ready", help="Marquer le brouillon prêt s'il est valide."),
) -> None:
    """Créer un brouillon (copie ou squelette), le vérifier, le marquer prêt (--ready)."""
    from campaigns.app import drafts as drafts_uc  # heavy: domain core
    from campaigns.ledger.models import CampaignDraft  # heavy: domain core

    with _step() as s:
        existing = s.get(CampaignDraft, campaign)
        if existing is None:
            drafts_uc.create_draft(
                session=s, actor=by, campaign_id=campaign, name=name, origin=origin
            )
            out.print(f"{campaign} : brouillon créé par {by}", markup=False)
        elif existing.state != drafts_uc.DRAFT:
            _fail(f"{campaign} : déjà prête ; une modification est une nouvelle version (console)")
        checked = drafts_uc.check_draft(session=s, actor=by, campaign_id=campaign)
        if ready and checked.ok:
            drafts_uc.mark_ready(session=s, actor=by, campaign_id=campaign)
    for problem in checked.problems:
        out.print(problem, markup=False, highlight=False, soft_wrap=True)
    if checked.problems:
        _fail(f"{campaign} : {len(checked.problems)} problème(s) ; corrigez-les dans la console")
    out.print(
        f"{campaign} : " + ("prête" if ready else "aucun problème (--ready pour la marquer prête)"),
        markup=False,
    )


def register(cli: typer.Typer) -> None:
    """Add `relance campaigns …` to the CLI."""
    cli.add_typer(app, name="campaigns")
