"""`relance explain`: why one person is or is not targeted, with the rows behind it."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from campaigns.definition.model import CampaignDefinition
    from targeting.explain import Check, Explanation


def _mark(ok: bool) -> str:
    return "[green]rempli[/green]" if ok else "[red]NON REMPLI[/red]"


def _row_text(r: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in r.items())


def _verdict(out: Console, x: Explanation, definition: CampaignDefinition, day: date) -> None:
    """The decision, its reasons in the campaign's words, the anchor date and the échelon."""
    # heavy optional dependency: the campaign vocabulary loads with the definition.
    from campaigns.definition.reasons import targeting_reason_label

    # heavy optional dependency: the rule's model (pydantic).
    from targeting.rule import Care

    psa, rng_gem, rule = x.ben_nir_psa, x.ben_rng_gem, definition.targeting
    verdict = "[green]ÉLIGIBLE[/green]" if x.eligible else "[red]NON ÉLIGIBLE[/red]"
    prio = " — [bold]prioritaire[/bold]" if x.priority else ""
    out.print(f"{escape(psa)}:{rng_gem} au {day:%d/%m/%Y} : {verdict}{prio}")
    if x.reasons:
        out.print(f"codes : {';'.join(x.reasons)}")
        labels = {n.id: n.label for n in rule.nodes() if isinstance(n, Care) and n.label}
        words = " ; ".join(targeting_reason_label(r, labels) for r in x.reasons)
        out.print(f"motifs : {words}", markup=False)
    # The anchor line only where the rule has one (an ALD renewal): no "échéance" on a flu wave.
    anchor = (
        f"{definition.labels.anchor} : {x.renewal_date:%d/%m/%Y}  ·  " if x.renewal_date else ""
    )
    out.print(f"{escape(anchor)}échelon : {x.echelon}")


def explain(
    campaign: str = typer.Argument(
        ..., help="Identifiant de la campagne (sophia-ald8), ou un dossier (./dossier)."
    ),
    extract: Path = typer.Option(..., "--extract", help="Dossier des <table>.parquet ou .csv."),
    as_of: str = typer.Option(..., "--as-of", help="Date du ciblage D (AAAA-MM-JJ)."),
    person: str = typer.Option(..., "--person", help="BEN_NIR_PSA:BEN_RNG_GEM"),
    as_json: bool = typer.Option(False, "--json", help="Écrire l'explication en JSON."),
) -> None:
    """La décision pour une personne et, critère par critère, ses preuves."""
    # heavy optional dependency: the campaign's definition (pydantic, Jinja2) loads on run.
    from campaigns.definition.catalog import load_campaign

    # heavy optional dependency: as above.
    from campaigns.definition.model import DefinitionError

    # heavy optional dependency: DuckDB loads only when a person is explained.
    from targeting.explain import explain_person

    # heavy optional dependency: as above.
    from targeting.extract import ExtractError

    err = Console(stderr=True)
    psa, _, rng = person.rpartition(":")
    try:
        day = date.fromisoformat(as_of)
        rng_gem = int(rng)
        if not psa:
            raise ValueError
    except ValueError:
        err.print(
            "[red]erreur :[/red] --person attend BEN_NIR_PSA:BEN_RNG_GEM et --as-of une date "
            "AAAA-MM-JJ"
        )
        raise typer.Exit(2) from None
    try:
        definition = load_campaign(campaign).definition
        rule = definition.targeting
        x = explain_person(
            rule=rule, extract=extract, as_of=day, ben_nir_psa=psa, ben_rng_gem=rng_gem
        )
    except (ExtractError, DefinitionError, KeyError) as e:
        err.print(f"[red]erreur :[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(x.as_dict(), ensure_ascii=False, indent=2))
        return
    out = Console()
    if not x.found:
        out.print(f"{psa}:{rng_gem} n'est pas dans ir_ben_r de {extract}", markup=False)
        raise typer.Exit(1)
    _verdict(out, x, definition, day)

    def section(title: str, checks: list[Check], gap: bool = False) -> None:
        t = Table(title=title, show_lines=True, title_justify="left")
        t.add_column("critère" if not gap else "écart aux soins")
        t.add_column("verdict")
        t.add_column("pourquoi")
        t.add_column("lignes")

        def add(c: Check, depth: int) -> None:
            verdict = (
                _mark(c.passed)
                if not gap
                else ("[red]écart[/red]" if not c.passed else "pas d'écart")
            )
            name = "  " * depth + c.name + (f" « {c.label} »" if c.label else "")
            rows = "\n".join(_row_text(r) for r in c.rows)
            t.add_row(escape(name), verdict, escape(c.detail), escape(rows))
            for child in c.children:  # the members of an all_of / any_of / not
                add(child, depth + 1)

        for c in checks:
            add(c, 0)
        out.print(t)

    section("Éligibilité", x.criteria)
    if x.gaps:
        section("Écarts aux soins", x.gaps, gap=True)
    if x.priority_rule is not None:
        section("Priorité", [x.priority_rule])


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command(name="explain")(explain)
