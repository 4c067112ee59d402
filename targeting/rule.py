"""A targeting rule as data: criteria and care gaps picked from a fixed vocabulary."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Alive(_Strict):
    """Not deceased on the run date (empty or 1600-01-01 death date)."""

    kind: Literal["alive"]


class Age(_Strict):
    """Age in whole years at the run date; birth is the 1st of the birth month."""

    kind: Literal["age"]
    min_years: int | None = None
    max_years: int | None = None


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


class MedecinTraitant(_Strict):
    """A médecin traitant declared on the run date."""

    kind: Literal["medecin_traitant"]


class NotEnrolled(_Strict):
    """No enrolment on or before the run date in the programme's table."""

    kind: Literal["not_enrolled"]
    table: str = "sophia_adhesions"


class NoOpposition(_Strict):
    """No opposition on one of the channels on or before the run date."""

    kind: Literal["no_opposition"]
    channels: list[str] = Field(default_factory=lambda: ["all"])


class HasContact(_Strict):
    """A record in the fund's contact file."""

    kind: Literal["has_contact"]


Criterion = Annotated[
    Alive
    | Age
    | Sex
    | Residence
    | AldRenewal
    | MedecinTraitant
    | NotEnrolled
    | NoOpposition
    | HasContact,
    Field(discriminator="kind"),
]


class NoCare(_Strict):
    """True when the person has no matching care line in the given years (relative to N)."""

    source: Literal["lab", "ccam", "specialty"]
    codes: list[str]
    years: list[int] = Field(description="years relative to the run year N, e.g. [-2, -1]")

    @model_validator(mode="after")
    def _years_in_past(self) -> NoCare:
        if not self.years or any(y > 0 for y in self.years):
            raise ValueError("years must be a non-empty list of offsets <= 0 from the run year")
        return self


class Priority(_Strict):
    """Priority when all (or any) of the named gaps hold."""

    all_of: list[str] | None = None
    any_of: list[str] | None = None


# Reason codes each criterion can give when it fails, in the order they are checked.
REASONS: dict[str, tuple[str, ...]] = {
    "alive": ("deceased",),
    "age": ("birth_date_unknown", "under_age", "over_age"),
    "sex": ("sex_not_targeted",),
    "residence": ("residence_not_targeted",),
    "ald_renewal": ("no_ald_period", "ald_open_ended", "renewal_outside_horizon"),
    "medecin_traitant": ("no_medecin_traitant",),
    "not_enrolled": ("already_enrolled",),
    "no_opposition": ("opposed",),
    "has_contact": ("no_contact_record",),
}


class TargetingRule(_Strict):
    """The whole rule: who is eligible, which gaps are measured, who is a priority."""

    horizon_days: int = Field(gt=0, le=366)
    criteria: list[Criterion] = Field(min_length=1)
    gaps: dict[str, NoCare] = Field(default_factory=dict)
    priority: Priority | None = None

    @model_validator(mode="after")
    def _priority_names_gaps(self) -> TargetingRule:
        if self.priority is not None:
            names = (self.priority.all_of or []) + (self.priority.any_of or [])
            unknown = [n for n in names if n not in self.gaps]
            if unknown:
                raise ValueError(f"priority names unknown gaps: {', '.join(unknown)}")
            if not names:
                raise ValueError("priority needs all_of or any_of")
        return self
