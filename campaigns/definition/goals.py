"""What a campaign's success is (its goal) and how much of it is expected (its objectives).

A goal is one of:
- `enrolment`: the person enrols in a programme; the programme's feed says so
  (today's form `{programme, attribution_window_days}` is this kind);
- `care_act`: a care act (lab, CCAM, specialty, drug) observed in the extract on or after
  the member's first contact;
- `registry_fact`: a registry fact (a médecin traitant declaration) starting on or after
  the member's entry.

Objectives are a count per échelon (today's form `{échelon: count}`) or a rate of the
eligible people of each échelon.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from targeting.schema import ECHELONS

CareSource = Literal["lab", "ccam", "specialty", "drug"]
RegistryFact = Literal["medecin_traitant_declared"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnrolmentGoal(_Strict):
    """Enrolment in a programme, from the programme's feed; it stops the cascade."""

    kind: Literal["enrolment"] = "enrolment"
    programme: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=32)
    table: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    date_column: str = Field(default="date_adhesion", pattern=r"^[a-z][a-z0-9_]*$")
    attribution_window_days: int = Field(default=60, gt=0)

    @property
    def observed(self) -> bool:
        """Whether the goal is observed in the extract (else it comes from a feed)."""
        return False

    @property
    def programme_table(self) -> str:
        """The programme's table in the extract."""
        return self.table or f"{self.programme}_adhesions"


class CareActGoal(_Strict):
    """A care act observed in the extract on or after the member's first contact."""

    kind: Literal["care_act"]
    source: CareSource
    codes: list[str] = Field(min_length=1)
    attribution_window_days: int = Field(default=60, gt=0)

    @property
    def observed(self) -> bool:
        """Whether the goal is observed in the extract (else it comes from a feed)."""
        return True

    @property
    def programme(self) -> str:
        """What the goal rows of the ledger are filed under (their `programme` column)."""
        return "care_act"


class RegistryFactGoal(_Strict):
    """A registry fact (a médecin traitant declaration) starting on or after the entry."""

    kind: Literal["registry_fact"]
    fact: RegistryFact
    attribution_window_days: int = Field(default=60, gt=0)

    @property
    def observed(self) -> bool:
        """Whether the goal is observed in the extract (else it comes from a feed)."""
        return True

    @property
    def programme(self) -> str:
        """What the goal rows of the ledger are filed under (their `programme` column)."""
        return "registry_fact"


Goal = Annotated[EnrolmentGoal | CareActGoal | RegistryFactGoal, Field(discriminator="kind")]


def goal_input(value: Any) -> Any:
    """Today's form (no `kind`) is an enrolment goal."""
    if isinstance(value, dict) and "kind" not in value:
        return {"kind": "enrolment", **value}
    return value


class Objectives(_Strict):
    """Per échelon, a count of goals to reach, or a rate of the eligible people."""

    kind: Literal["count", "rate"] = "count"
    default: int | float | None = Field(default=None, ge=0)
    echelons: dict[str, int | float] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _today_form(cls, value: Any) -> Any:
        """Today's form `{échelon: count}` is a count per échelon."""
        if isinstance(value, dict) and not ({"kind", "default", "echelons"} & set(value)):
            return {"kind": "count", "echelons": value}
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Objectives:
        bad = sorted(k for k, n in self.echelons.items() if n < 0)
        if bad:
            raise ValueError(f"objectives must be >= 0 (échelons {bad})")
        values = list(self.echelons.values()) + ([self.default] if self.default is not None else [])
        if self.kind == "rate":
            over = [v for v in values if v > 1]
            if over:
                raise ValueError(f"a rate objective is a share between 0 and 1 (got {over[0]})")
        elif any(v != int(v) for v in values):
            raise ValueError("a count objective is a whole number")
        return self

    # Read like today's mapping `{échelon: count}`: iterating gives the échelons.
    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __getitem__(self, echelon: str) -> int:
        return self.counts()[echelon]

    def keys(self) -> list[str]:
        """The échelons that have an objective."""
        return self.names()

    def values(self) -> list[int]:
        """The fixed counts (a count objective; none for a rate)."""
        return list(self.counts().values())

    def items(self) -> list[tuple[str, int]]:
        """Échelon and fixed count (a count objective; none for a rate)."""
        return list(self.counts().items())

    def __bool__(self) -> bool:
        return bool(self.echelons) or self.default is not None

    def __contains__(self, echelon: object) -> bool:
        return isinstance(echelon, str) and self.known(echelon)

    def names(self) -> list[str]:
        """The échelons that have an objective, in order."""
        default = set(ECHELONS) if self.default is not None else set()
        return sorted(set(self.echelons) | default)

    def known(self, echelon: str) -> bool:
        """Whether the échelon has an objective (its own, or the default for a known one)."""
        return echelon in self.echelons or (self.default is not None and echelon in ECHELONS)

    def counts(self) -> dict[str, int]:
        """The fixed counts of a count objective (none for a rate: they follow the eligible)."""
        if self.kind != "count":
            return {}
        out = {e: int(n) for e, n in self.echelons.items()}
        if self.default is not None:
            out = {e: out.get(e, int(self.default)) for e in sorted(set(ECHELONS) | set(out))}
        return out

    def rate(self, echelon: str) -> float | None:
        """The share of the eligible to reach in this échelon (rate objectives only)."""
        if self.kind != "rate":
            return None
        return self.echelons.get(echelon, self.default)

    def target(self, echelon: str, eligible: int) -> int | None:
        """The count to reach in an échelon with this many eligible people, if any."""
        if self.kind == "count":
            return self.counts().get(echelon)
        r = self.rate(echelon)
        return None if r is None else math.ceil(r * eligible - 1e-9)
