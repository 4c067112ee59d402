"""Offres sur rebond: the catalogue (data) and which offers fit a person today."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from campaigns.definition.model import load_yaml

CATALOGUE = Path(__file__).parent / "catalogue.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fit(_Strict):
    """Who an offer is for."""

    sex: list[int] | None = None
    min_age: int | None = None
    max_age: int | None = None
    no_compte_ameli: bool = False


class Offer(_Strict):
    """One offer: its section, what to say, what to hand over, who it fits."""

    id: str
    section: str
    title: str
    script: str
    supports: list[str] = Field(default_factory=list)
    when: Fit = Fit()
    highlight_months: list[int] = Field(default_factory=list)


class Catalogue(_Strict):
    """The five sections and their offers."""

    sections: list[str]
    offers: list[Offer]

    @model_validator(mode="after")
    def _sections_known(self) -> Catalogue:
        unknown = {o.section for o in self.offers} - set(self.sections)
        if unknown:
            raise ValueError(f"offers in unknown sections: {', '.join(sorted(unknown))}")
        return self

    def get(self, offer_id: str) -> Offer | None:
        """An offer by id."""
        return next((o for o in self.offers if o.id == offer_id), None)


@lru_cache(maxsize=4)
def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    """The catalogue file, validated (a key given twice is an error naming both lines)."""
    return Catalogue.model_validate(load_yaml(path, path.read_text(encoding="utf-8")))


def suggest(
    catalogue: Catalogue, *, sex: int, age: int | None, compte_ameli: bool, today: date
) -> list[tuple[Offer, bool]]:
    """Offers that fit the person, highlighted ones (a national event this month) first."""
    out = []
    for o in catalogue.offers:
        w = o.when
        if w.sex is not None and sex not in w.sex:
            continue
        if (w.min_age is not None or w.max_age is not None) and age is None:
            continue
        if w.min_age is not None and age is not None and age < w.min_age:
            continue
        if w.max_age is not None and age is not None and age > w.max_age:
            continue
        if w.no_compte_ameli and compte_ameli:
            continue
        out.append((o, today.month in o.highlight_months))
    return sorted(out, key=lambda x: not x[1])
