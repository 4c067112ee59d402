"""`relance demo`: a shipped campaign played day by day on synthetic data (sophia by default)."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    campaign: str = typer.Option(
        "sophia-ald8", "--campaign", help="La campagne livrée à jouer (son identifiant)."
    ),
    people: int | None = typer.Option(
        None, min=1, help="Assurés synthétiques à générer (défaut : la taille de la campagne)."
    ),
    days: int | None = typer.Option(
        None, min=1, help="Jours à jouer (défaut : la durée de démonstration de la campagne)."
    ),
    start: str | None = typer.Option(
        None, help="Premier jour joué, AAAA-MM-JJ (défaut : le début de la campagne)."
    ),
    seed: int = typer.Option(2016, help="Graine de l'extrait et de la simulation."),
    data_dir: Path = typer.Option(Path("var/demo"), help="Où la démonstration range ses fichiers."),
) -> None:
    """Générer des assurés, puis jouer une campagne jour par jour (conseillers et assurés
    simulés)."""
    # heavy optional dependency: the demo loads the whole stack (flows, channels, DuckDB).
    from console.demo.command import demo as play

    play(campaign=campaign, people=people, days=days, start=start, seed=seed, data_dir=data_dir)


def register(app: typer.Typer) -> None:
    """Add the command to the CLI."""
    app.command(name="demo")(demo)
