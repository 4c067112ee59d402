"""Attribution, uplift and power, on figures computed by hand."""

from __future__ import annotations

import math
from datetime import date

import pytest

from campaigns.measurement.effect import (
    Touch,
    attribute,
    holdout_needed,
    projected_attainment,
    uplift,
)

D = date(2026, 5, 20)


@pytest.mark.parametrize(
    ("touches", "expected"),
    [
        ([], None),
        ([Touch(date(2026, 5, 1), "phone")], "phone"),
        ([Touch(date(2026, 5, 1), "phone"), Touch(date(2026, 5, 10), "mailbox")], "mailbox"),
        # After the enrolment: no credit.
        ([Touch(date(2026, 5, 21), "letter")], None),
        # Same day counts.
        ([Touch(D, "letter"), Touch(date(2026, 5, 1), "phone")], "letter"),
        # Window of 60 days: 60 days before is in, 61 is out.
        ([Touch(date(2026, 3, 21), "phone")], "phone"),
        ([Touch(date(2026, 3, 20), "phone")], None),
    ],
)
def test_last_touch_within_window(touches: list[Touch], expected: str | None) -> None:
    got = attribute(D, touches, window_days=60)
    assert (got.channel if got else None) == expected


def test_uplift_by_hand() -> None:
    # Contacted 1000, 120 enrolled (12 %); holdout 200, 10 enrolled (5 %).
    u = uplift(contacted=1000, contacted_enrolled=120, holdout=200, holdout_enrolled=10)
    se = math.sqrt(0.12 * 0.88 / 1000 + 0.05 * 0.95 / 200)
    assert u.difference == pytest.approx(0.07)
    assert u.low == pytest.approx(0.07 - 1.959964 * se, abs=1e-6)
    assert u.high == pytest.approx(0.07 + 1.959964 * se, abs=1e-6)
    assert u.verdict == "positive"


def test_uplift_interval_containing_zero_is_not_significant() -> None:
    u = uplift(contacted=500, contacted_enrolled=30, holdout=100, holdout_enrolled=5)
    assert u.low is not None and u.low < 0 < (u.high or 0)
    assert u.verdict == "not_significant"


@pytest.mark.parametrize(
    ("n1", "e1", "n0", "e0"), [(1000, 100, 20, 2), (1000, 100, 100, 3), (10, 5, 100, 20)]
)
def test_small_groups_are_said_too_small(n1: int, e1: int, n0: int, e0: int) -> None:
    u = uplift(contacted=n1, contacted_enrolled=e1, holdout=n0, holdout_enrolled=e0)
    assert u.verdict == "too_small"
    assert u.low is None and "trop peu" in u.explanation


def test_uplift_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        uplift(contacted=10, contacted_enrolled=11, holdout=10, holdout_enrolled=0)


def test_holdout_needed_by_hand() -> None:
    # p0 = 10 %, p1 = 15 %, 5 % holdout (19 contacted per holdout person), alpha 5 %, power 80 %.
    z = 1.959964 + 0.841621
    expected = math.ceil(z**2 * (0.1 * 0.9 + 0.15 * 0.85 / 19) / 0.05**2)
    assert holdout_needed(baseline_rate=0.10, uplift_to_detect=0.05, holdout_share=0.05) in (
        expected,
        expected + 1,
    )
    # A smaller effect needs a bigger holdout.
    assert holdout_needed(
        baseline_rate=0.10, uplift_to_detect=0.02, holdout_share=0.05
    ) > holdout_needed(baseline_rate=0.10, uplift_to_detect=0.05, holdout_share=0.05)


def test_projected_attainment() -> None:
    assert projected_attainment(enrolled=100, objective=730, days_elapsed=50) == pytest.approx(100)
    assert projected_attainment(enrolled=5, objective=0, days_elapsed=10) is None


def test_the_explanation_names_the_campaigns_goal_in_french() -> None:
    u = uplift(
        contacted=1000, contacted_enrolled=120, holdout=200, holdout_enrolled=10, goal="vaccination"
    )
    assert u.verdict == "positive"
    assert u.explanation.startswith("la campagne a augmenté « vaccination »")
    small = uplift(contacted=500, contacted_enrolled=1, holdout=100, holdout_enrolled=0, goal="x")
    assert "trop peu de cas « x »" in small.explanation
