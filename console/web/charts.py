"""Charts drawn on the server (matplotlib, SVG inline): no JavaScript, printable."""

from __future__ import annotations

import io
from datetime import date

import matplotlib
import numpy as np
from markupsafe import escape

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from campaigns.measurement.dashboard import ResultRow
from campaigns.measurement.effect_report import EffectRow


def _svg(fig: object) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    text = buf.getvalue()
    return text[text.index("<svg") :]


def not_enough(title: str, reason: str) -> str:
    """In place of a chart that would be an empty frame: say so, and why."""
    return (
        f'<figure class="chart-empty" role="group" aria-label="{escape(title)}">'
        f"<figcaption>{escape(title)}</figcaption>"
        f"<p><strong>Pas assez de données</strong> : {escape(reason)}.</p></figure>"
    )


def attainment_chart(rows: list[ResultRow]) -> str:
    """Attainment per échelon against the objective (100 %)."""
    title = "Atteinte de l'objectif par échelon"
    rows = [r for r in rows if r.attainment is not None]
    if not rows:
        return not_enough(title, "aucun échelon n'a d'objectif fixé")
    fig, ax = plt.subplots(figsize=(7, 3))
    names = [r.echelon for r in rows]
    values = [r.attainment or 0 for r in rows]
    colours = ["#1e7e34" if v >= 100 else "#c0392b" for v in values]
    ax.bar(names, values, color=colours)
    ax.axhline(100, color="#0c419a", linestyle="--", linewidth=1, label="objectif")
    for i, v in enumerate(values):
        ax.text(i, v + 2, f"{v:.0f} %", ha="center", fontsize=8)
    ax.set_ylabel("atteinte (%)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return _svg(fig)


def cumulative_chart(
    series: list[tuple[date, int]], objective: int, *, goal: str = "objectif atteint"
) -> str:
    """Goals reached over time, cumulated, named in the campaign's words."""
    if not series:
        return not_enough(
            f"{goal[:1].upper()}{goal[1:]} au fil du temps",
            f"aucune personne n'a atteint « {goal} » sur la période",
        )
    fig, ax = plt.subplots(figsize=(7, 3))
    if series:
        days = np.array([d.isoformat() for d, _ in series], dtype="datetime64[D]")
        ax.step(days, [n for _, n in series], where="post", color="#0c419a")
    ax.axhline(objective, color="#999", linestyle="--", linewidth=1, label=f"objectif {objective}")
    ax.set_ylabel(f"{goal} (cumul)")
    ax.set_title(f"{goal[:1].upper()}{goal[1:]} au fil du temps")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return _svg(fig)


def uplift_chart(rows: list[EffectRow]) -> str:
    """Uplift (contacted minus holdout) with its confidence interval, per échelon."""
    title = "Effet de la campagne : hors témoins − témoins (IC 95 %)"
    if not any(r.uplift.low is not None for r in rows):
        total = rows[-1].uplift.explanation if rows else "aucune personne dans la campagne"
        return not_enough(title, total or "aucun intervalle de confiance calculable")
    fig, ax = plt.subplots(figsize=(7, 3))
    for i, r in enumerate(rows):
        u = r.uplift
        if u.difference is None or u.low is None or u.high is None:
            ax.text(i, 0, "trop peu", ha="center", fontsize=7, color="#666")
            continue
        ax.errorbar(
            i,
            100 * u.difference,
            yerr=[[100 * (u.difference - u.low)], [100 * (u.high - u.difference)]],
            fmt="o",
            color="#1e7e34" if u.verdict == "positive" else "#555",
            capsize=3,
        )
    ax.axhline(0, color="#999", linewidth=1)
    ax.set_xticks(range(len(rows)), [r.echelon for r in rows])
    ax.set_ylabel("points de %")
    ax.set_title(title)
    return _svg(fig)
