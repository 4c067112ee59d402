"""Offres sur rebond: the catalogue is data, and only offers that fit the person are shown."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from campaigns.definition.offers import load_catalogue, suggest

C = load_catalogue()


def ids(**kw: object) -> list[str]:
    return [o.id for o, _ in suggest(C, **kw)]  # type: ignore[arg-type]


def test_five_sections() -> None:
    assert C.sections == [
        "Régulation",
        "Prévention",
        "Services en santé",
        "Services administratifs",
        "E-Services",
    ]
    assert {o.section for o in C.offers} == set(C.sections)


@pytest.mark.parametrize(
    ("sex", "age", "compte", "month", "present", "absent"),
    [
        (2, 60, True, 10, ["depistage-sein", "depistage-colorectal"], ["compte-ameli"]),
        (1, 60, True, 10, ["depistage-colorectal"], ["depistage-sein"]),
        (2, 45, False, 3, ["compte-ameli"], ["depistage-sein", "depistage-colorectal"]),
        (2, 80, True, 10, [], ["depistage-sein", "depistage-colorectal"]),
        (2, None, True, 10, ["medecin-traitant"], ["depistage-sein"]),
    ],
)
def test_offers_fit_the_person(
    sex: int, age: int | None, compte: bool, month: int, present: list[str], absent: list[str]
) -> None:
    got = ids(sex=sex, age=age, compte_ameli=compte, today=date(2026, month, 5))
    assert set(present) <= set(got) and not set(absent) & set(got)


def test_the_months_event_comes_first() -> None:
    october = suggest(C, sex=2, age=60, compte_ameli=True, today=date(2026, 10, 5))
    assert october[0][1] and october[0][0].id in ("depistage-sein", "vaccination-grippe")
    march = suggest(C, sex=1, age=60, compte_ameli=True, today=date(2026, 3, 5))
    assert march[0][0].id == "depistage-colorectal" and march[0][1]


def test_a_bad_catalogue_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("sections: [A]\noffers:\n  - {id: x, section: B, title: t, script: s}\n")
    with pytest.raises(ValidationError, match="unknown sections: B"):
        load_catalogue(bad)
