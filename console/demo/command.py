"""`relance demo`: a shipped campaign played day by day on synthetic data (sophia by default)."""

from __future__ import annotations

import shutil
import textwrap
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.app import stages
from campaigns.cascade.dispatch import Adapters
from campaigns.cascade.review import approve, list_status, pending_list, sign_off
from campaigns.definition.catalog import Campaign, load_campaign
from campaigns.definition.model import CampaignDefinition, DefinitionError
from campaigns.ledger import crypto
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import get_engine, session_scope
from campaigns.ledger.models import Member
from campaigns.measurement.effect_report import effect_report
from campaigns.measurement.report import EchelonRow, total_row
from campaigns.settings import Settings
from channels.mailbox import LocalMailbox
from console.demo.simulator import Simulator
from flows.adapters import batch_size_for, build_adapters
from relance_fs import DIR_MODE, private_dir
from targeting.synth import write_extract

# The seed's objectives (5,540 enrolments) are for a year of the DRSM Île-de-France, about
# 10 million insured of the régime général; the demo pro-rates them to its size and length.
REGION_INSURED = 10_000_000
# Written in the folder a demo creates: only such a folder is ever emptied by the next demo.
MARKER = ".relance-demo"


@dataclass(frozen=True)
class DemoSize:
    """What a demo plays by default: how many insured, from which day, for how many days.

    Each shipped campaign plays in under 3 minutes on 2 cores at its size (README).
    """

    people: int
    start: date
    days: int


# Sophia: a renewal campaign, few people enter each day. The flu wave admits almost one insured
# in four on its launch day (the daily tick then walks them all); the standing campaign about
# one in a hundred and fifty.
DEMO_SIZES: dict[str, DemoSize] = {
    "sophia-ald8": DemoSize(people=200_000, start=date(2026, 3, 2), days=120),
    "grippe-2026": DemoSize(people=5_000, start=date(2026, 10, 14), days=110),
    "mt-ald": DemoSize(people=150_000, start=date(2026, 10, 1), days=90),
}
OTHER_CAMPAIGN_PEOPLE = 50_000
OTHER_CAMPAIGN_DAYS = 90


def demo_size(definition: CampaignDefinition) -> DemoSize:
    """The campaign's own demo size, or: 50,000 insured from its start, to its end (at most
    90 days)."""
    if definition.id in DEMO_SIZES:
        return DEMO_SIZES[definition.id]
    start = definition.dates.start
    days = OTHER_CAMPAIGN_DAYS
    if definition.dates.end is not None:
        days = min(days, (definition.dates.end - start).days + 1)
    return DemoSize(people=OTHER_CAMPAIGN_PEOPLE, start=start, days=days)


class DataDirError(ValueError):
    """A --data-dir the demo may not use: the message says why and what to do."""


def prepare_data_dir(data_dir: Path) -> None:
    """An empty private folder for the demo; a previous demo's is emptied, anything else refused."""
    if data_dir.exists() and not data_dir.is_dir():
        raise DataDirError(
            f"--data-dir {data_dir} est un fichier : indiquez un dossier nouveau ou vide."
        )
    if data_dir.is_dir() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).is_file():
            raise DataDirError(
                f"--data-dir {data_dir} n'est pas vide et n'a pas été créé par `relance demo` "
                f"(pas de fichier {MARKER}) : rien n'a été supprimé ; indiquez un dossier "
                "nouveau ou vide."
            )
        shutil.rmtree(data_dir)
    private_dir(data_dir).chmod(DIR_MODE)
    (data_dir / MARKER).write_text("Dossier de `relance demo` : le prochain demo le vide.\n")


def demo_settings(data_dir: Path) -> Settings:
    """The demo's ledger, outbox, feeds and the key encrypting them: all in data_dir."""
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{(data_dir / 'relance.db').resolve()}",
        data_keys=None,
    )


def _fr(n: int) -> str:
    """12345 → « 12 345 » (French thousands, narrow no-break space)."""
    return f"{n:,}".replace(",", "\u202f")


def render_report(rows: list[EchelonRow], title: str, goal: str = "adhésions") -> Table:
    """The per-échelon table the demo ends with; `goal` heads the goals-reached column."""
    t = Table(title=title, show_lines=False)
    cols = [
        "échelon",
        "éligibles",
        "prioritaires",
        "témoins",
        "appelés",
        "joints",
        "messages ameli",
        "courriers",
        goal,
        "objectif",
        "atteinte",
    ]
    for c in cols:
        # A header of several words takes two lines and an échelon keeps its whole name
        # (« 93 Seine-Saint-Denis »): the table then fits 140 characters without cutting.
        name = c == "échelon"
        header = "\n".join(textwrap.wrap(c, 12))
        t.add_column(header, justify="left" if name else "right", no_wrap=name)
    for r in [*rows, total_row(rows)]:
        att = f"{r.attainment:.0f} %" if r.attainment is not None else "—"
        n = _fr
        t.add_row(
            f"{r.echelon} {r.name}" if r.echelon != "total" else "Total",
            n(r.eligible),
            n(r.priority),
            n(r.holdout),
            n(r.called),
            n(r.reached),
            n(r.mailbox),
            n(r.letters),
            n(r.enrolled),
            n(r.objective),
            att,
            style="bold" if r.echelon == "total" else None,
        )
    return t


def simulate_local_validation(engine: Engine, campaign_id: str, day: date) -> str:
    """SIMULATED: each échelon reviews its list (no exclusion) and a manager approves it."""
    with session_scope(engine) as s:
        lst = pending_list(session=s, campaign_id=campaign_id)
        if lst is None:
            return "Validation locale : aucune liste à relire (campagne déjà lancée)."
        for echelon in list_status(session=s, target_list=lst).per_echelon:
            sign_off(session=s, target_list=lst, echelon=echelon, by=f"demo-echelon-{echelon}")
        counts = approve(session=s, target_list=lst, by="demo-campaign-manager", today=day)
    launched = sum(c["launched"] for c in counts.values())
    return (
        f"Validation locale (SIMULÉE) : {len(counts)} échelons ont validé leur liste le "
        f"{day:%d/%m/%Y} ; demo-campaign-manager a approuvé ; {_fr(launched)} personnes lancées."
    )


DEMO_ACCOUNTS = (
    ("conseiller", "adviser", None),
    ("superviseur", "supervisor", None),
    ("chef-de-campagne", "campaign_manager", None),
    ("echelon-93", "echelon_lead", "93"),
    ("admin", "admin", None),
)


def demo_accounts(engine: Engine, data_dir: Path) -> str:
    """One console account per role (demo passwords, printed), and how to open the console."""
    lines = ["Comptes de la console (mots de passe de démonstration) :"]
    with session_scope(engine) as s:
        for username, role, echelon in DEMO_ACCOUNTS:
            password = f"demo-{username}-2026"
            create_user(session=s, username=username, password=password, role=role, echelon=echelon)
            scope = f", échelon {echelon}" if echelon else ""
            lines.append(f"  {username:<17} {password:<28} {role}{scope}")
    lines.append(
        f"Pour l'ouvrir : RELANCE_DATA_DIR={data_dir} RELANCE_EXTRACT_DIR={data_dir}/extract "
        "uv run relance console   → http://127.0.0.1:8000"
    )
    return "\n".join(lines)


def demo_effect(engine: Engine, definition: CampaignDefinition) -> str:
    """Where the enrolments came from and the campaign's effect over the holdout, in words."""
    with session_scope(engine) as s:
        effect = effect_report(
            session=s,
            campaign_id=definition.id,
            window_days=definition.goal.attribution_window_days,
            goal=definition.labels.goal,
        )[-1]
    words = {"phone": "appel", "mailbox": "message ameli", "letter": "courrier", "none": "aucun"}
    credited = ", ".join(f"{words.get(k, k)} {_fr(v)}" for k, v in effect.credited.items())
    return (
        f"Objectifs atteints ({definition.labels.goal}) attribués au dernier contact dans les "
        f"{definition.goal.attribution_window_days} jours : {credited}. "
        f"Effet par rapport au groupe témoin : {effect.uplift.explanation}"
    )


def demo(
    *,
    campaign: str,
    people: int | None,
    days: int | None,
    start: str | None,
    seed: int,
    data_dir: Path,
) -> None:
    """Generate insured, then play a campaign day by day (`relance demo`, console/cmd_demo.py)."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    err = Console(stderr=True)
    try:
        loaded = load_campaign(campaign)
    except DefinitionError as e:
        err.print(f"[red]erreur :[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    size = demo_size(loaded.definition)
    try:
        first = date.fromisoformat(start) if start is not None else size.start
    except ValueError:
        err.print(f"[red]--start {escape(repr(start))} n'est pas une date (AAAA-MM-JJ)[/red]")
        raise typer.Exit(2) from None
    t0 = time.perf_counter()
    try:
        prepare_data_dir(data_dir)
    except (DataDirError, OSError) as e:
        why = e if isinstance(e, DataDirError) else f"--data-dir {data_dir} : {e.strerror}"
        Console(stderr=True).print(
            f"[red]erreur :[/red] {escape(str(why))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None
    settings = demo_settings(data_dir)
    crypto.set_keys(crypto.configured_keys(settings))
    try:
        _play(
            console,
            settings,
            loaded,
            people=people or size.people,
            days=days or size.days,
            first=first,
            seed=seed,
            t0=t0,
        )
    finally:
        crypto.reset()


def _members(engine: Engine, campaign_id: str) -> dict[str, int]:
    """Members of the campaign by status (for the progress bar)."""
    with session_scope(engine) as s:
        rows = s.exec(
            select(Member.status, func.count())
            .where(Member.campaign_id == campaign_id)
            .group_by(col(Member.status))
        ).all()
    return {str(status): int(n) for status, n in rows}


def _progress_line(engine: Engine, definition: CampaignDefinition) -> str:
    by = _members(engine, definition.id)
    return (
        f"{_fr(sum(by.values()))} entrés · {_fr(by.get('active', 0))} en cours · "
        f"{_fr(by.get('goal', 0))} {definition.labels.goal}"
    )


def _play_day(
    engine: Engine,
    campaign: Campaign,
    sim: Simulator,
    settings: Settings,
    adapters: Adapters,
    day: date,
    *,
    first: bool,
) -> str | None:
    """One day: the platform's stages, then the simulated people, then what they left.

    On the first day, once the list is drawn, the échelons validate it (SIMULATED).
    """
    extract = settings.data_dir / "extract"
    stages.targeting_stage(engine=engine, campaign=campaign, extract=extract, day=day)
    note = None
    if first:
        note = (
            simulate_local_validation(engine, campaign.definition.id, day)
            if campaign.definition.validation.required
            else "Validation locale : non requise par la campagne ; les contacts commencent dès "
            "le premier jour."
        )
    stages.tick_stage(engine=engine, campaign=campaign, day=day)
    for channel in ("mailbox", "email", "letter"):
        stages.dispatch_stage(
            engine=engine,
            campaign=campaign,
            adapters=adapters,
            day=day,
            channel=channel,
            batch_size=batch_size_for(settings, channel),
            lanes=settings.dispatch_lanes,
        )
    feed = sim.play(day)
    if feed is not None:
        stages.enrolment_stage(engine=engine, campaign=campaign, files=[feed], day=day)
    if sim.observed:
        stages.goal_observation_stage(engine=engine, campaign=campaign, extract=extract, day=day)
    stages.mailbox_reads_stage(engine=engine, campaign=campaign, gateway=adapters.mailbox, day=day)
    return note


def _play(
    console: Console,
    settings: Settings,
    campaign: Campaign,
    *,
    people: int,
    days: int,
    first: date,
    seed: int,
    t0: float,
) -> None:
    """Generate the extract, play the days, print the report."""
    data_dir = settings.data_dir
    extract = data_dir / "extract"
    definition = campaign.definition
    with console.status(f"Génération de {_fr(people)} assurés synthétiques…"):
        write_extract(out=extract, people=people, seed=seed, as_of=first, fmt="parquet")
    console.print(
        f"Extrait de {_fr(people)} assurés écrit en "
        f"{time.perf_counter() - t0:.1f} s ({extract})".replace(".", ",", 1)
    )
    engine = get_engine(settings.resolved_database_url())
    scale = people / REGION_INSURED * days / 365
    stages.register(engine=engine, campaign=campaign, objective_scale=scale)
    adapters = build_adapters(settings)
    mailbox = adapters.mailbox if isinstance(adapters.mailbox, LocalMailbox) else None
    sim = Simulator(
        engine=engine,
        definition=definition,
        feeds_dir=settings.feeds_dir,
        seed=seed,
        extract=extract,
        mailbox=mailbox,
    )
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("jours"),
        TimeElapsedColumn(),
        TextColumn("·"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[members]}"),
        console=console,
    )
    launch_note = ""
    with progress:
        bar = progress.add_task(f"{definition.id}", total=days, members="")
        for i in range(days):
            day = first + timedelta(days=i)
            progress.update(bar, description=f"{definition.id} {day.isoformat()}")
            note = _play_day(engine, campaign, sim, settings, adapters, day, first=i == 0)
            launch_note = note or launch_note
            progress.update(bar, advance=1, members=_progress_line(engine, definition))
    console.print(launch_note)
    console.print(demo_accounts(engine, data_dir))
    rows = stages.report_stage(engine=engine, campaign=campaign)
    effect_note = demo_effect(engine, definition)
    last = first + timedelta(days=days - 1)
    console.print(
        render_report(
            rows,
            f"{definition.name}, du {first:%d/%m/%Y} au {last:%d/%m/%Y} : "
            f"{definition.labels.goal} par échelon",
            goal=definition.labels.goal,
        )
    )
    console.print(_objectives_note(definition, people=people, days=days, scale=scale))
    console.print(
        f"Appels, lectures des messages ameli et objectifs atteints sont SIMULÉS "
        f"({_fr(sim.calls_made)} appels simulés ; paramètres dans console/demo/simulator.py"
        + (
            f" ; {_fr(sum(sim.claims.written.values()))} lignes de soins ajoutées à l'extrait"
            if sim.claims is not None
            else ""
        )
        + ")."
    )
    console.print(effect_note)
    console.print(
        f"Registre : {settings.resolved_database_url()}  ·  envois : {settings.outbox_dir}  ·  "
        f"{time.perf_counter() - t0:.0f} s en tout"
    )


def _objectives_note(
    definition: CampaignDefinition, *, people: int, days: int, scale: float
) -> str:
    """How to read the objective column."""
    if definition.objectives.kind == "rate":
        return (
            "Objectifs : une part des éligibles de chaque échelon "
            f"(par défaut {round(100 * (definition.objectives.default or 0))} %)."
        )
    return (
        f"Objectifs : les nombres annuels de la campagne pour ~{_fr(REGION_INSURED)} assurés, "
        f"ramenés à {_fr(people)} assurés et {days} jours "
        f"(×{scale:.5f})".replace(".", ",")
        + "."
    )
