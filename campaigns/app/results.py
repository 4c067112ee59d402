"""The regional lead's figures as one use case: every table, chart and export reads this."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session

from campaigns.definition.catalog import campaign_by_id
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.audit import record
from campaigns.ledger.models import Objective
from campaigns.measurement.dashboard import (
    COLUMNS,
    DEFINITIONS,
    ResultRow,
    cumulative_enrolments,
    funnel,
    objective_history,
    results,
)
from campaigns.measurement.effect import MIN_GROUP, holdout_needed
from campaigns.measurement.effect_report import EffectRow, effect_report
from campaigns.measurement.period import Period
from targeting.schema import ECHELONS


@dataclass
class LeadResults:
    """Everything the results page and its exports show, computed once for one period."""

    definition: CampaignDefinition
    period: Period
    rows: list[ResultRow]
    total: ResultRow
    show_total: bool
    columns: list[tuple[str, str]]
    definitions: dict[str, str]
    funnel: list[tuple[str, int]]
    effects: list[EffectRow]
    series: list[tuple[date, int]]
    history: list[Objective]
    power: dict[str, Any]

    def table(self) -> list[ResultRow]:
        """The rows of the échelon table, the total last when the reader sees every échelon."""
        return [*self.rows, self.total] if self.show_total else list(self.rows)


def _columns(d: CampaignDefinition) -> list[tuple[str, str]]:
    """The result columns, the goal column named in the campaign's own words."""
    rate = d.objectives.kind == "rate"  # the rate column only where objectives are rates
    return [
        (k, d.labels.goal if k == "enrolled" else label)
        for k, label in COLUMNS
        if rate or k != "objective_rate"
    ]


def _empty_row(echelon: str) -> ResultRow:
    """An échelon's line with nothing in it."""
    name = ECHELONS.get(echelon, echelon)
    return ResultRow(echelon, name, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, None, None)


def lead_results(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    period: Period,
    echelon: str | None = None,
    action: str = "view_results",
) -> LeadResults:
    """The figures of a campaign over a period, scoped to one échelon when given; audited."""
    d = campaign_by_id(campaign_id).definition
    rows, total = results(session=session, definition=d, today=period.until, period=period)
    effects = effect_report(
        session=session,
        campaign_id=campaign_id,
        window_days=d.goal.attribution_window_days,
        goal=d.labels.goal,
        since=period.since,
        until=period.until,
    )
    if echelon is not None:
        rows = [r for r in rows if r.echelon == echelon]
        # An échelon with no line (not in the campaign): zeros, never the region's total.
        total = rows[0] if rows else _empty_row(echelon)
        effects = [e for e in effects if e.echelon == echelon]
    last = effects[-1].uplift if effects else None
    base = (last.rate_holdout or last.rate_contacted or 0.05) if last else 0.05
    power = {
        "baseline": base,
        "uplift": 0.02,
        "needed": holdout_needed(
            baseline_rate=min(base, 0.9), uplift_to_detect=0.02, holdout_share=d.holdout.share
        ),
        "have": last.holdout if last else 0,
        "min_group": MIN_GROUP,
    }
    columns = _columns(d)
    record(
        session=session,
        actor=actor,
        action=action,
        target=campaign_id,
        detail={"periode": period.query(), **({"echelon": echelon} if echelon else {})},
    )
    return LeadResults(
        definition=d,
        period=period,
        rows=rows,
        total=total,
        show_total=echelon is None,
        columns=columns,
        definitions={label: DEFINITIONS[k] for k, label in columns},
        funnel=funnel(total, d.labels.goal),
        effects=effects,
        series=cumulative_enrolments(
            session=session, campaign_id=campaign_id, echelon=echelon, period=period
        ),
        history=[
            o
            for o in objective_history(session=session, campaign_id=campaign_id)
            if echelon is None or o.echelon == echelon
        ][:30],
        power=power,
    )
