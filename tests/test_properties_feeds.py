"""Properties of the enrolment feed and objectives readers: garbage lines reported by number."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.dashboard import ObjectiveError, parse_objectives_csv
from campaigns.enrolments import FeedReport, _parse

SETTINGS = settings(max_examples=40, deadline=None)
# One-line garbage: printable text without quotes or line breaks (a CSV record per line).
GARBAGE = st.text(
    st.characters(
        codec="utf-8", exclude_characters='"\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029'
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: s.replace(",", "").strip() not in ("", "75", "93") and s.count(",") != 3)
VALID_ENROLMENT = st.builds(
    lambda n, r, c: f"P{n},{r},2026-03-{1 + n % 28:02d},{c}",
    st.integers(0, 999),
    st.integers(1, 3),
    st.sampled_from(["online", "paper", "doctor", "phone"]),
)


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), VALID_ENROLMENT, GARBAGE), min_size=1, max_size=12))
def test_enrolment_feed_reports_garbage_lines_and_keeps_valid_ones(
    lines: list[tuple[bool, str, str]],
) -> None:
    body = [valid if ok else junk for ok, valid, junk in lines]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "feed.csv"
        path.write_text("ben_nir_psa,ben_rng_gem,date_adhesion,canal\n" + "\n".join(body) + "\n")
        report = FeedReport(file=path.name)
        rows = _parse(path, report)
    bad = [n for n, (ok, _, _) in enumerate(lines, start=2) if not ok]
    numbers = [int(re.match(r"feed.csv, ligne (\d+), colonne \w+ : ", e)[1]) for e in report.errors]  # type: ignore[index]
    assert list(dict.fromkeys(numbers)) == bad
    assert [f"{r['ben_nir_psa']},{r['ben_rng_gem']}" for r in rows] == [
        ",".join(v.split(",")[:2]) for ok, v, _ in lines if ok
    ]


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["75", "93"]), GARBAGE), max_size=8))
def test_objectives_import_refuses_the_whole_file_naming_each_bad_line(
    lines: list[tuple[bool, str, str]],
) -> None:
    seen: set[str] = set()
    body, bad = [], []
    for n, (ok, echelon, junk) in enumerate(lines, start=2):
        if ok and echelon not in seen:
            seen.add(echelon)
            body.append(f"{echelon},{n * 10}")
        else:
            body.append(f"{junk},1" if ok else junk)
            bad.append(n)
    text = "echelon,objective\n" + "\n".join(body) + "\n"
    if not bad:
        assert parse_objectives_csv(text, {"75", "93"}) == {
            line.split(",")[0]: int(line.split(",")[1]) for line in body
        }
        return
    with pytest.raises(ObjectiveError) as e:  # nothing else escapes, nothing is applied
        parse_objectives_csv(text, {"75", "93"})
    assert [int(n) for n in re.findall(r"ligne (\d+)[, ]", str(e.value))] == bad


def test_enrolment_line_numbers_follow_quoted_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    path.write_text(
        'ben_nir_psa,ben_rng_gem,date_adhesion,canal\n"A\nB",1,2026-03-01,online\nC,x,2026-03-01,online\n'
    )
    report = FeedReport(file=path.name)
    _parse(path, report)
    assert report.errors == ["feed.csv, ligne 4, colonne ben_rng_gem : n'est pas un nombre entier"]


def test_objectives_superscript_digit_is_an_objective_error() -> None:
    with pytest.raises(ObjectiveError):
        parse_objectives_csv("echelon,objective\n75,²\n", {"75"})
