"""The campaign's effect: attribution of enrolments to touches, uplift over the holdout, power."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist
from typing import Any

# Below these counts a normal-approximation interval is not trustworthy: say so, don't guess.
MIN_GROUP = 30
MIN_EVENTS = 5


@dataclass(frozen=True)
class Touch:
    """One contact that could have led to an enrolment."""

    on: date
    channel: str  # phone (reached), mailbox (deposited or read), letter (sent)
    detail: str = ""


def attribute(enrolled_on: date, touches: Iterable[Touch], window_days: int) -> Touch | None:
    """The last touch on or before the enrolment and at most `window_days` before it."""
    best: Touch | None = None
    for t in touches:
        in_window = t.on <= enrolled_on and (enrolled_on - t.on).days <= window_days
        if in_window and (best is None or t.on >= best.on):
            best = t
    return best


@dataclass(frozen=True)
class Uplift:
    """Enrolment rate of the contacted minus the holdout's, with its confidence interval."""

    contacted: int
    contacted_enrolled: int
    holdout: int
    holdout_enrolled: int
    confidence: float
    low: float | None
    high: float | None
    verdict: str  # "positive", "negative", "not_significant", "too_small"
    explanation: str

    @property
    def rate_contacted(self) -> float | None:
        return self.contacted_enrolled / self.contacted if self.contacted else None

    @property
    def rate_holdout(self) -> float | None:
        return self.holdout_enrolled / self.holdout if self.holdout else None

    @property
    def difference(self) -> float | None:
        a, b = self.rate_contacted, self.rate_holdout
        return a - b if a is not None and b is not None else None


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def uplift(
    *,
    contacted: int,
    contacted_enrolled: int,
    holdout: int,
    holdout_enrolled: int,
    confidence: float = 0.95,
    goal: str = "l'objectif",
) -> Uplift:
    """Difference of two proportions with a Wald interval, or a plain 'too small to conclude'.

    `goal` is the campaign's own word for its goal (`labels.goal`), used in the explanation.
    """
    if not (0 <= contacted_enrolled <= contacted and 0 <= holdout_enrolled <= holdout):
        raise ValueError("enrolled counts must lie between 0 and their group size")
    base: dict[str, Any] = {
        "contacted": contacted,
        "contacted_enrolled": contacted_enrolled,
        "holdout": holdout,
        "holdout_enrolled": holdout_enrolled,
        "confidence": confidence,
    }
    small = _too_small(contacted, contacted_enrolled, holdout, holdout_enrolled, goal)
    if small:
        return Uplift(**base, low=None, high=None, verdict="too_small", explanation=small)
    p1, p0 = contacted_enrolled / contacted, holdout_enrolled / holdout
    se = math.sqrt(p1 * (1 - p1) / contacted + p0 * (1 - p0) / holdout)
    z = _z(confidence)
    d = p1 - p0
    low, high = d - z * se, d + z * se
    pct = f"{round(confidence * 100)} %"
    if low > 0:
        verdict = "positive"
        text = (
            f"la campagne a augmenté « {goal} » (intervalle de confiance à {pct} au-dessus de zéro)"
        )
    elif high < 0:
        verdict = "negative"
        text = (
            f"les personnes contactées ont moins atteint « {goal} » (intervalle à {pct} sous zéro)"
        )
    else:
        verdict = "not_significant"
        text = f"pas d'effet démontré : l'intervalle de confiance à {pct} contient zéro"
    return Uplift(**base, low=low, high=high, verdict=verdict, explanation=text)


def _too_small(n1: int, e1: int, n0: int, e0: int, goal: str) -> str:
    if n0 < MIN_GROUP or n1 < MIN_GROUP:
        return (
            f"trop peu de personnes pour conclure (contactées {n1}, groupe témoin {n0} ; "
            f"il en faut {MIN_GROUP} dans chaque groupe)"
        )
    if min(e0, n0 - e0, e1, n1 - e1) < MIN_EVENTS:
        return (
            f"trop peu de cas « {goal} » pour conclure (contactées {e1}/{n1}, groupe témoin "
            f"{e0}/{n0} ; il faut au moins {MIN_EVENTS} personnes avec et sans dans chaque groupe)"
        )
    return ""


def holdout_needed(
    *,
    baseline_rate: float,
    uplift_to_detect: float,
    holdout_share: float,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Holdout size to detect `uplift_to_detect` (two-sided test), given the holdout's share."""
    if not 0 < holdout_share < 1:
        raise ValueError("holdout_share must be between 0 and 1")
    if uplift_to_detect <= 0 or not 0 <= baseline_rate < 1 or baseline_rate + uplift_to_detect >= 1:
        raise ValueError("rates must stay within [0, 1) and the uplift must be positive")
    p0, p1 = baseline_rate, baseline_rate + uplift_to_detect
    k = (1 - holdout_share) / holdout_share  # contacted per holdout person
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    n0 = z**2 * (p0 * (1 - p0) + p1 * (1 - p1) / k) / uplift_to_detect**2
    return math.ceil(n0)


def projected_attainment(
    *, enrolled: int, objective: int, days_elapsed: int, days_in_period: int = 365
) -> float | None:
    """Attainment at the end of the period if enrolments go on at the current pace, in percent."""
    if objective <= 0 or days_elapsed <= 0:
        return None
    return 100.0 * enrolled * days_in_period / days_elapsed / objective
