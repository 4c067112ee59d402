"""`relance demo`: the sophia ALD 8 campaign played day by day on synthetic data."""

from __future__ import annotations

import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import Engine

from campaigns.app import stages
from campaigns.cascade.review import approve, list_status, pending_list, sign_off
from campaigns.definition.catalog import load_campaign
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger import crypto
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import get_engine, session_scope
from campaigns.measurement.effect_report import effect_report
from campaigns.measurement.report import EchelonRow, total_row
from campaigns.settings import Settings
from console.demo.simulator import Simulator
from flows.adapters import build_adapters
from relance_fs import DIR_MODE, private_dir
from targeting.synth import write_extract

# The seed's objectives (5,540 enrolments) are for a year of the DRSM Île-de-France, about
# 10 million insured of the régime général; the demo pro-rates them to its size and length.
REGION_INSURED = 10_000_000
# Written in the folder a demo creates: only such a folder is ever emptied by the next demo.
MARKER = ".relance-demo"


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


def render_report(rows: list[EchelonRow], title: str) -> Table:
    """The per-échelon table the demo ends with."""
    t = Table(title=title, show_lines=False)
    cols = [
        "échelon",
        "eligible",
        "priority",
        "holdout",
        "called",
        "reached",
        "mailbox",
        "letters",
        "enrolled",
        "objective",
        "attainment",
    ]
    for c in cols:
        t.add_column(c, justify="left" if c == "échelon" else "right")
    for r in [*rows, total_row(rows)]:
        att = f"{r.attainment:.0f} %" if r.attainment is not None else "—"
        t.add_row(
            f"{r.echelon} {r.name}" if r.echelon != "total" else "Total",
            str(r.eligible),
            str(r.priority),
            str(r.holdout),
            str(r.called),
            str(r.reached),
            str(r.mailbox),
            str(r.letters),
            str(r.enrolled),
            str(r.objective),
            att,
            style="bold" if r.echelon == "total" else None,
        )
    return t


def simulate_local_validation(engine: Engine, campaign_id: str, day: date) -> str:
    """SIMULATED: each échelon reviews its list (no exclusion) and a manager approves it."""
    with session_scope(engine) as s:
        lst = pending_list(session=s, campaign_id=campaign_id)
        if lst is None:
            return "Local validation: no list to review (campaign already launched)."
        for echelon in list_status(session=s, target_list=lst).per_echelon:
            sign_off(session=s, target_list=lst, echelon=echelon, by=f"demo-echelon-{echelon}")
        counts = approve(session=s, target_list=lst, by="demo-campaign-manager", today=day)
    launched = sum(c["launched"] for c in counts.values())
    return (
        f"Local validation (SIMULATED): {len(counts)} échelons validated their lists on {day}; "
        f"demo-campaign-manager approved; {launched} people launched."
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
    lines = ["Console accounts (demo passwords):"]
    with session_scope(engine) as s:
        for username, role, echelon in DEMO_ACCOUNTS:
            password = f"demo-{username}-2026"
            create_user(session=s, username=username, password=password, role=role, echelon=echelon)
            scope = f", échelon {echelon}" if echelon else ""
            lines.append(f"  {username:<17} {password:<28} {role}{scope}")
    lines.append(
        f"Open it with: RELANCE_DATA_DIR={data_dir} RELANCE_EXTRACT_DIR={data_dir}/extract "
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
        )[-1]
    credited = ", ".join(f"{k} {v}" for k, v in effect.credited.items())
    return (
        "Enrolments credited to the last "
        f"touch within {definition.goal.attribution_window_days} days: {credited}. "
        f"Effect over the holdout: {effect.uplift.explanation}"
    )


def demo(
    people: int = typer.Option(200_000, min=1, help="Synthetic insured to generate."),
    days: int = typer.Option(120, min=1, help="Days to play."),
    start: str = typer.Option("2026-03-02", help="First day played (YYYY-MM-DD)."),
    seed: int = typer.Option(2016, help="Seed of the extract and of the simulation."),
    data_dir: Path = typer.Option(Path("var/demo"), help="Where the demo keeps its files."),
) -> None:
    """Generate insured, then play the campaign day by day with simulated advisers and insured."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    try:
        first = date.fromisoformat(start)
    except ValueError:
        Console(stderr=True).print(
            f"[red]--start {escape(repr(start))} n'est pas une date (AAAA-MM-JJ)[/red]"
        )
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
        _play(console, settings, people=people, days=days, first=first, seed=seed, t0=t0)
    finally:
        crypto.reset()


def _play(
    console: Console,
    settings: Settings,
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
    campaign = load_campaign("sophia-ald8")
    with console.status(f"Generating {people:,} synthetic insured…"):
        write_extract(out=extract, people=people, seed=seed, as_of=first, fmt="parquet")
    console.print(
        f"Extract of {people:,} insured written in {time.perf_counter() - t0:.1f} s ({extract})"
    )
    engine = get_engine(settings.resolved_database_url())
    scale = people / REGION_INSURED * days / 365
    stages.register(engine=engine, campaign=campaign, objective_scale=scale)
    adapters = build_adapters(settings)
    sim = Simulator(
        engine=engine, definition=campaign.definition, feeds_dir=settings.feeds_dir, seed=seed
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} days"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        bar = progress.add_task("Playing the campaign", total=days)
        for i in range(days):
            day = first + timedelta(days=i)
            progress.update(bar, description=f"Day {day.isoformat()}")
            stages.targeting_stage(engine=engine, campaign=campaign, extract=extract, day=day)
            if i == 0:
                launch_note = simulate_local_validation(engine, campaign.definition.id, day)
            stages.tick_stage(engine=engine, campaign=campaign, day=day)
            for channel in ("mailbox", "email", "letter"):
                stages.dispatch_stage(
                    engine=engine, campaign=campaign, adapters=adapters, day=day, channel=channel
                )
            feed = sim.play(day)
            if feed is not None:
                stages.enrolment_stage(engine=engine, campaign=campaign, files=[feed], day=day)
            progress.advance(bar)
    console.print(launch_note)
    console.print(demo_accounts(engine, data_dir))
    rows = stages.report_stage(engine=engine, campaign=campaign)
    effect_note = demo_effect(engine, campaign.definition)
    last = first + timedelta(days=days - 1)
    console.print(render_report(rows, f"sophia — ALD 8, {first} → {last}: enrolments per échelon"))
    console.print(
        f"Objectives: the seed's 5,540 a year for ~{REGION_INSURED:,} insured, pro-rated to "
        f"{people:,} insured and {days} days (×{scale:.5f}). Calls, mailbox reads and "
        f"enrolments are SIMULATED ({sim.calls_made:,} simulated calls; parameters in "
        "console/demo/simulator.py)."
    )
    console.print(effect_note)
    console.print(
        f"Ledger: {settings.resolved_database_url()}  ·  outbox: {settings.outbox_dir}  ·  "
        f"{time.perf_counter() - t0:.0f} s in all"
    )


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command(name="demo")(demo)
