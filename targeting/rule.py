"""A targeting rule as data: criteria and care gaps picked from a fixed vocabulary.

Criteria compose: a list is an implicit `all_of`; `all_of`, `any_of` and `not` nest. Care
acts (`care` criteria and gaps) are looked for in a window ending on or before the run date D.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

NAME = r"^[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Alive(_Strict):
    """Not deceased on the run date (empty or 1600-01-01 death date)."""

    kind: Literal["alive"]


class Age(_Strict):
    """Age in whole years at the run date; birth is the 1st of the birth month."""

    kind: Literal["age"]
    min_years: int | None = None
    max_years: int | None = None
    exact_years: list[int] | None = Field(default=None, min_length=1)


class Sex(_Strict):
    """`ben_sex_cod` among the given codes."""

    kind: Literal["sex"]
    codes: list[int]


class Residence(_Strict):
    """`ben_res_dpt` among the given départements."""

    kind: Literal["residence"]
    departements: list[str]


class AldRenewal(_Strict):
    """An ALD period of the given kind whose renewal date falls in (D, D + horizon]."""

    kind: Literal["ald_renewal"]
    ald_num: int
    icd10_prefixes: list[str]
    etm_nat: list[int]


class AldInForce(_Strict):
    """An ALD period in force at D: started on or before D, open-ended or ending on or after D.

    Empty `ald_nums` and `icd10_prefixes`: any ALD; empty `etm_nat`: any nature.
    """

    kind: Literal["ald_in_force"]
    ald_nums: list[int] = Field(default_factory=list)
    icd10_prefixes: list[str] = Field(default_factory=list)
    etm_nat: list[int] = Field(default_factory=list)


class MedecinTraitant(_Strict):
    """A médecin traitant declared on the run date (`declared: false`: none declared)."""

    kind: Literal["medecin_traitant"]
    declared: bool = True


class NotEnrolled(_Strict):
    """No enrolment on or before the run date in the programme's table."""

    kind: Literal["not_enrolled"]
    table: str = Field(default="sophia_adhesions", pattern=NAME)
    date_column: str = Field(default="date_adhesion", pattern=NAME)


class NoOpposition(_Strict):
    """No opposition on one of the channels on or before the run date."""

    kind: Literal["no_opposition"]
    channels: list[str] = Field(default_factory=lambda: ["all"])


class HasContact(_Strict):
    """A record in the fund's contact file."""

    kind: Literal["has_contact"]


Source = Literal["lab", "ccam", "specialty", "drug"]


class Window(_Strict):
    """Exactly one of: calendar `years` relative to D's year, the last `days` or `months`
    ((D − N, D]), or `since` a parameter's date ([date, D])."""

    years: list[int] | None = None
    days: int | None = Field(default=None, gt=0)
    months: int | None = Field(default=None, gt=0)
    since: str | None = Field(default=None, pattern=NAME)

    @model_validator(mode="after")
    def _one_form(self) -> Window:
        forms = [f for f in ("years", "days", "months", "since") if getattr(self, f) is not None]
        if len(forms) != 1:
            raise ValueError(
                "une période a exactement une forme parmi years, days, months, since "
                f"(ici : {', '.join(forms) or 'aucune'})"
            )
        if self.years is not None and (not self.years or any(y > 0 for y in self.years)):
            raise ValueError(
                "years : liste non vide d'années relatives à l'année de D, toutes <= 0"
            )
        return self


class Care(_Strict):
    """A care act of the given source and codes present (or absent) in the window."""

    kind: Literal["care"]
    id: str = Field(pattern=NAME)
    label: str | None = None
    source: Source
    codes: list[str] = Field(min_length=1)
    window: Window
    present: bool = True


Criterion = Annotated[
    Alive
    | Age
    | Sex
    | Residence
    | AldRenewal
    | AldInForce
    | MedecinTraitant
    | Care
    | NotEnrolled
    | NoOpposition
    | HasContact,
    Field(discriminator="kind"),
]
LEAVES: tuple[type[BaseModel], ...] = (
    Alive,
    Age,
    Sex,
    Residence,
    AldRenewal,
    AldInForce,
    MedecinTraitant,
    Care,
    NotEnrolled,
    NoOpposition,
    HasContact,
)


class AllOf(_Strict):
    """Every member holds."""

    kind: ClassVar[str] = "all_of"
    all_of: list[Node] = Field(min_length=1)


class AnyOf(_Strict):
    """At least one member holds."""

    kind: ClassVar[str] = "any_of"
    any_of: list[Node] = Field(min_length=1)


class Not(_Strict):
    """The inner criterion does not hold."""

    kind: ClassVar[str] = "not"
    not_: Node = Field(alias="not")


_COMPOSITES = ("all_of", "any_of", "not")


def _tag(v: Any) -> str | None:
    """The union member of a criterion: its `kind`, or its composition key."""
    if isinstance(v, dict):
        if "kind" in v:
            return str(v["kind"])
        keys = [k for k in _COMPOSITES if k in v]
        return keys[0] if len(keys) == 1 else None
    return getattr(v, "kind", None)


Node = Annotated[
    Annotated[Alive, Tag("alive")]
    | Annotated[Age, Tag("age")]
    | Annotated[Sex, Tag("sex")]
    | Annotated[Residence, Tag("residence")]
    | Annotated[AldRenewal, Tag("ald_renewal")]
    | Annotated[AldInForce, Tag("ald_in_force")]
    | Annotated[MedecinTraitant, Tag("medecin_traitant")]
    | Annotated[Care, Tag("care")]
    | Annotated[NotEnrolled, Tag("not_enrolled")]
    | Annotated[NoOpposition, Tag("no_opposition")]
    | Annotated[HasContact, Tag("has_contact")]
    | Annotated[AllOf, Tag("all_of")]
    | Annotated[AnyOf, Tag("any_of")]
    | Annotated[Not, Tag("not")],
    Discriminator(
        _tag,
        custom_error_type="invalid_criterion",
        custom_error_message=(
            "critère inconnu : il faut un `kind` du vocabulaire ou une seule clé "
            "parmi all_of, any_of, not"
        ),
    ),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()


def walk(nodes: list[Node]) -> list[Node]:
    """Every node of a criteria tree, composites included, depth first."""
    out: list[Node] = []
    for n in nodes:
        out.append(n)
        if isinstance(n, AllOf):
            out += walk(n.all_of)
        elif isinstance(n, AnyOf):
            out += walk(n.any_of)
        elif isinstance(n, Not):
            out += walk([n.not_])
    return out


class NoCare(_Strict):
    """True when the person has no matching care line in the window.

    The window is `window`, or the older `years` key given directly (calendar years
    relative to the run year N, e.g. [-2, -1]).
    """

    source: Source
    codes: list[str] = Field(min_length=1)
    years: list[int] | None = Field(
        default=None, description="years relative to the run year N, e.g. [-2, -1]"
    )
    window: Window | None = None

    @model_validator(mode="after")
    def _one_window(self) -> NoCare:
        if (self.years is None) == (self.window is None):
            raise ValueError("un écart aux soins a soit `window`, soit `years` (un seul)")
        if self.years is not None and (not self.years or any(y > 0 for y in self.years)):
            raise ValueError("years must be a non-empty list of offsets <= 0 from the run year")
        return self

    @property
    def span(self) -> Window:
        """The window, whichever way it was written."""
        return self.window if self.window is not None else Window(years=self.years)


class Priority(_Strict):
    """Priority when all (or any) of the named gaps hold, or when a criterion holds."""

    all_of: list[str] | None = None
    any_of: list[str] | None = None
    when: Node | None = None


# Reason codes each criterion can give when it fails, in the order they are checked.
# `care` and `not` write their code qualified: `care_missing:<id>`, `excluded:<inner kind>`.
REASONS: dict[str, tuple[str, ...]] = {
    "alive": ("deceased",),
    "age": ("birth_date_unknown", "under_age", "over_age", "not_exact_age"),
    "sex": ("sex_not_targeted",),
    "residence": ("residence_not_targeted",),
    "ald_renewal": ("no_ald_period", "ald_open_ended", "renewal_outside_horizon"),
    "ald_in_force": ("no_ald_in_force",),
    "medecin_traitant": ("no_medecin_traitant", "has_medecin_traitant"),
    "care": ("care_missing", "care_found"),
    "not_enrolled": ("already_enrolled",),
    "no_opposition": ("opposed",),
    "has_contact": ("no_contact_record",),
    "not": ("excluded",),
}


class TargetingRule(_Strict):
    """The whole rule: who is eligible, which gaps are measured, who is a priority."""

    horizon_days: int | None = Field(default=None, gt=0, le=366)
    parameters: dict[str, date] = Field(default_factory=dict)
    criteria: list[Node] = Field(min_length=1)
    gaps: dict[str, NoCare] = Field(default_factory=dict)
    priority: Priority | None = None

    def nodes(self) -> list[Node]:
        """Every criterion of the rule (eligibility and priority), composites included."""
        when = [self.priority.when] if self.priority and self.priority.when else []
        return walk(self.criteria) + walk(when)

    def windows(self) -> list[Window]:
        return [n.window for n in self.nodes() if isinstance(n, Care)] + [
            g.span for g in self.gaps.values()
        ]

    @model_validator(mode="after")
    def _consistent(self) -> TargetingRule:
        for name in self.parameters:
            if not _is_name(name):
                raise ValueError(f"parameters : nom invalide {name!r} ([a-z][a-z0-9_]*)")
        unknown = sorted(
            {w.since for w in self.windows() if w.since and w.since not in self.parameters}
        )
        if unknown:
            raise ValueError(
                f"période `since` : paramètre inconnu {', '.join(unknown)} "
                f"(paramètres déclarés : {', '.join(self.parameters) or 'aucun'})"
            )
        renewals = [n for n in self.nodes() if isinstance(n, AldRenewal)]
        if renewals and self.horizon_days is None:
            raise ValueError("horizon_days est requis quand un critère ald_renewal est utilisé")
        if len(renewals) > 1:
            raise ValueError("un seul critère ald_renewal par règle")
        ids = [n.id for n in self.nodes() if isinstance(n, Care)]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"critères care : identifiant en double {', '.join(twice)}")
        self._check_priority()
        return self

    def _check_priority(self) -> None:
        if self.priority is None:
            return
        p = self.priority
        forms = [f for f in ("all_of", "any_of", "when") if getattr(p, f) is not None]
        if len(forms) > 1:
            raise ValueError("priority : une seule forme parmi all_of, any_of, when")
        names = (p.all_of or []) + (p.any_of or [])
        unknown = [n for n in names if n not in self.gaps]
        if unknown:
            raise ValueError(f"priority names unknown gaps: {', '.join(unknown)}")
        if not names and p.when is None:
            raise ValueError("priority needs all_of or any_of")

    @property
    def exact_ages(self) -> bool:
        """True when an age criterion has exact_years (the output then has `birth_date`)."""
        return any(isinstance(n, Age) and n.exact_years for n in self.nodes())


def _is_name(s: str) -> bool:
    return re.fullmatch(NAME[1:-1], s) is not None
