"""A campaign definition: the validated `campaign.yaml` of a campaign folder."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from datetime import date, time
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from campaigns.definition.goals import Goal, Objectives, goal_input
from targeting.rule import Criterion, TargetingRule

_CRITERIA: tuple[Any, ...] = get_args(get_args(Criterion)[0])

DEFINITIONS_DIR = Path(__file__).parent / "definitions"

Channel = Literal["phone", "mailbox", "email", "letter"]
Requirement = Literal["phone", "compte_ameli", "email", "postal_address"]
# Condition facts a step may require or be skipped on (`requires`, `unless`): a contact fact,
# the member's priority, or what an earlier step gave (`reached:call`, `read:mailbox`, `sent:x`).
CONTACT_FACTS: tuple[str, ...] = Requirement.__args__  # type: ignore[attr-defined]
PERSON_FACTS: tuple[str, ...] = (*CONTACT_FACTS, "priority")
# A step fact and the channel the step it names must have (None: any channel).
STEP_FACTS: dict[str, str | None] = {"reached": "phone", "read": "mailbox", "sent": None}
_FACT = re.compile(r"^(?:(?P<kind>[a-z]+):(?P<step>[a-z][a-z0-9_]*)|(?P<fact>[a-z_]+))$")
AnchorKind = Literal["ald_renewal", "wave", "entry", "birthday"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
OutcomeCode = Literal[
    "enrolled_on_call",
    "will_enrol_online",
    "refused",
    "callback",
    "no_answer",
    "busy",
    "voicemail",
    "wrong_number",
    "deceased",
    "objects",
]
OUTCOME_CODES: tuple[str, ...] = OutcomeCode.__args__  # type: ignore[attr-defined]
REACHED_OUTCOMES = frozenset(
    {"enrolled_on_call", "will_enrol_online", "refused", "callback", "objects"}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Holdout(_Strict):
    """Share of people kept out of every contact to measure the campaign's effect."""

    share: float = Field(default=0.05, ge=0.0, lt=0.5)


class ContactHours(_Strict):
    """When a person may be called, in their own time zone."""

    days: list[Weekday] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"]  # type: ignore[arg-type]
    )
    start: time = time(8, 30)
    end: time = time(17, 0)
    public_holidays: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> ContactHours:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class Attempts(_Strict):
    """How often a step may be tried."""

    max: int = Field(default=1, ge=1, le=10)
    spacing_working_days: int = Field(default=2, ge=0)
    max_callbacks: int = Field(default=0, ge=0)


class Outcome(_Strict):
    """What a call outcome does to the cascade."""

    effect: Literal["goal", "end_step", "callback", "retry", "exit"]
    opposition: Literal["all", "phone", "mailbox", "email", "letter"] | None = None
    invalidate: Literal["phone", "email", "postal_address"] | None = None


class Notify(_Strict):
    """A notice sent on another channel once the step's message is delivered."""

    channel: Literal["email"]
    template: str


def parse_fact(fact: str) -> tuple[str, str | None]:
    """A condition fact as (kind, step id): `phone` → ("phone", None), `reached:call` →
    ("reached", "call"); ValueError naming the fact when it is not in the vocabulary."""
    m = _FACT.match(fact)
    if m and m["fact"] in PERSON_FACTS:
        return m["fact"], None
    if m and m["kind"] in STEP_FACTS:
        return m["kind"], m["step"]
    known = ", ".join([*PERSON_FACTS, *(f"{k}:<étape>" for k in STEP_FACTS)])
    raise ValueError(f"condition inconnue {fact!r} (connues : {known})")


def _valid_facts(facts: list[str]) -> list[str]:
    for f in facts:
        parse_fact(f)
    return facts


class Step(_Strict):
    """One step of the cascade, timed relative to the person's anchor date.

    `end_days` may be left out when the campaign has an end date (the window then runs to
    it); `not_before` / `not_after` bound the window by a date or a targeting parameter.
    The step is skipped when a `requires` fact fails or an `unless` fact holds.
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    channel: Channel
    start_days: int
    end_days: int | None = None
    not_before: date | str | None = None
    not_after: date | str | None = None
    requires: list[str] = Field(default_factory=list)
    unless: list[str] = Field(default_factory=list)
    template: str
    attempts: Attempts = Attempts()
    outcomes: dict[OutcomeCode, Outcome] = Field(default_factory=dict)
    notify: Notify | None = None

    @field_validator("requires", "unless")
    @classmethod
    def _known_facts(cls, v: list[str]) -> list[str]:
        return _valid_facts(v)

    @field_validator("not_before", "not_after")
    @classmethod
    def _bound(cls, v: date | str | None) -> date | str | None:
        if isinstance(v, str) and not re.match(r"^[a-z][a-z0-9_]*$", v):
            raise ValueError(f"attendu une date (AAAA-MM-JJ) ou un nom de paramètre, pas {v!r}")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> Step:
        if self.end_days is not None and self.end_days < self.start_days:
            raise ValueError("end_days must not be before start_days")
        if (
            isinstance(self.not_before, date)
            and isinstance(self.not_after, date)
            and self.not_after < self.not_before
        ):
            raise ValueError("not_after ne doit pas précéder not_before")
        if self.channel == "phone":
            missing = [c for c in OUTCOME_CODES if c not in self.outcomes]
            if missing:
                raise ValueError(f"a phone step must map every outcome; missing: {missing}")
        elif self.outcomes:
            raise ValueError("outcomes apply to phone steps only")
        return self


class Presentation(_Strict):
    """Words shown to people: programme name, sender, plain labels of the gaps."""

    programme_name: str | None = None
    programme_url: str | None = None
    sender: str
    gap_labels: dict[str, str] = Field(default_factory=dict)


class Labels(_Strict):
    """The campaign's own words for its anchor and its goal, in every label, column and page."""

    anchor: str = "date de référence"
    goal: str = "objectif atteint"


class Validation(_Strict):
    """Local validation: each échelon reviews its list and a manager approves before launch."""

    required: bool = False
    delay_days: int = Field(default=5, ge=1, le=60)


class Dates(_Strict):
    """When the campaign runs: nobody is admitted before `start` nor after `end`; at its end
    every queued action is cancelled and the members leave."""

    start: date
    end: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Dates:
        if self.end is not None and self.end < self.start:
            raise ValueError("la date de fin précède la date de début")
        return self


class Schedule(_Strict):
    """When the campaign's flows run each day, Paris time (the defaults suit most campaigns)."""

    day_at: time = time(6, 30)
    validation_at: time = time(6, 45)
    dispatch_at: time = time(13, 30)
    report_at: time = time(19, 0)

    @model_validator(mode="after")
    def _ordered(self) -> Schedule:
        if not self.day_at < self.dispatch_at < self.report_at:
            raise ValueError(
                "schedule : il faut day_at avant dispatch_at, et dispatch_at avant report_at"
            )
        return self


class Anchor(_Strict):
    """The date each member's steps are placed from.

    ald_renewal: the person's ALD renewal date; wave: the launch (dates.start), or the day
    the person enters when later; entry: the day the person enters; birthday: the person's
    most recent birthday.
    """

    kind: AnchorKind


def criteria_of_kind(criteria: Any, kind: str) -> Iterator[Any]:
    """Every criterion of a kind in a list of criteria, composed ones (all_of, any_of, not)
    walked into."""
    if isinstance(criteria, BaseModel):
        if getattr(criteria, "kind", None) == kind:
            yield criteria
        for name in type(criteria).model_fields:
            yield from criteria_of_kind(getattr(criteria, name), kind)
    elif isinstance(criteria, list | tuple):
        for c in criteria:
            yield from criteria_of_kind(c, kind)
    elif isinstance(criteria, dict):
        for c in criteria.values():
            yield from criteria_of_kind(c, kind)


def uses_exact_ages(rule: TargetingRule) -> bool:
    """Whether the rule's criteria give exact ages (the birthday anchor needs them)."""
    return any(getattr(c, "exact_years", None) for c in criteria_of_kind(rule.criteria, "age"))


def _anchor_problem(kind: str, rule: TargetingRule, dates: Dates | None) -> str | None:
    if kind == "ald_renewal" and not any(criteria_of_kind(rule.criteria, "ald_renewal")):
        return "anchor.kind ald_renewal : il faut un critère {kind: ald_renewal} dans targeting"
    if kind == "wave" and (dates is None or dates.end is None):
        return "anchor.kind wave : il faut une date de fin (dates.end)"
    if kind == "birthday" and not uses_exact_ages(rule):
        return "anchor.kind birthday : il faut un critère {kind: age, exact_years: [...]}"
    return None


def _parameters(rule: TargetingRule) -> dict[str, Any]:
    """The rule's dated parameters ({} while the targeting has none)."""
    return dict(getattr(rule, "parameters", None) or {})


def _step_problems(i: int, step: Step, earlier: dict[str, Step], params: dict[str, Any]) -> str:
    """What is wrong in one step's conditions and bounds, '' when nothing."""
    for key in ("requires", "unless"):
        for j, fact in enumerate(getattr(step, key)):
            kind, ref = parse_fact(fact)
            if ref is None:
                continue
            where = f"cascade[{i}].{key}[{j}]"
            if ref not in earlier:
                return f"{where}: {fact!r} : l'étape « {ref} » n'existe pas avant « {step.id} »"
            channel = STEP_FACTS[kind]
            if channel is not None and earlier[ref].channel != channel:
                return (
                    f"{where}: {fact!r} : l'étape « {ref} » est de canal "
                    f"{earlier[ref].channel}, il faut {channel}"
                )
    for key in ("not_before", "not_after"):
        bound = getattr(step, key)
        if isinstance(bound, str) and bound not in params:
            return (
                f"cascade[{i}].{key}: paramètre inconnu {bound!r} "
                f"(targeting.parameters : {sorted(params) or 'aucun'})"
            )
    return ""


class CampaignDefinition(_Strict):
    """Everything a campaign is: rule, cascade, timings, objectives, words."""

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str
    description: str = ""
    programme: str | None = None
    dates: Dates
    anchor: Anchor
    goal: Goal
    targeting: TargetingRule
    holdout: Holdout = Holdout()
    validation: Validation = Validation()
    contact_hours: ContactHours = ContactHours()
    schedule: Schedule = Schedule()
    cascade: list[Step] = Field(min_length=1)
    objectives: Objectives = Objectives()
    presentation: Presentation
    labels: Labels = Labels()

    @field_validator("goal", mode="before")
    @classmethod
    def _goal_kind(cls, v: Any) -> Any:
        return goal_input(v)

    @model_validator(mode="after")
    def _coherent(self) -> CampaignDefinition:
        ids = [s.id for s in self.cascade]
        if len(set(ids)) != len(ids):
            raise ValueError(f"cascade step ids must be unique: {ids}")
        unknown = [g for g in self.presentation.gap_labels if g not in self.targeting.gaps]
        if unknown:
            raise ValueError(f"presentation.gap_labels names unknown gaps: {unknown}")
        problem = _anchor_problem(self.anchor.kind, self.targeting, self.dates)
        if problem:
            raise ValueError(problem)
        self._check_steps()
        return self

    def _check_steps(self) -> None:
        params = _parameters(self.targeting)
        earlier: dict[str, Step] = {}
        for i, step in enumerate(self.cascade):
            if step.end_days is None and self.dates.end is None:
                raise ValueError(
                    f"cascade[{i}].end_days: requis quand la campagne n'a pas de date de fin "
                    "(dates.end)"
                )
            problem = _step_problems(i, step, earlier, params)
            if problem:
                raise ValueError(problem)
            earlier[step.id] = step

    def parameter(self, name: str) -> date:
        """A dated targeting parameter, by name."""
        value = _parameters(self.targeting)[name]
        return value if isinstance(value, date) else date.fromisoformat(str(value))

    def step(self, step_id: str) -> Step:
        """The step with this id."""
        for s in self.cascade:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def templates(self) -> list[str]:
        """Every template the campaign uses."""
        names = []
        for s in self.cascade:
            names.append(s.template)
            if s.notify:
                names.append(s.notify.template)
        return names


class DefinitionError(Exception):
    """A campaign folder that cannot be loaded; the message says where and why."""


_MERGE = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping: PyYAML would silently keep the last."""

    def __init__(self, key: Any, first: int, second: int) -> None:
        self.key, self.first, self.second = key, first, second
        super().__init__(problem=f"duplicate key {key!r}")


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that gives one key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:
                continue  # an unhashable key: the base loader says so
        return super().construct_mapping(node, deep)


def load_yaml(path: Path, text: str) -> Any:
    """A YAML document of a campaign folder; a duplicate key is an error naming both lines."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except DuplicateKeyError as e:
        raise DefinitionError(
            f"{path}:{e.second}: clé {e.key!r} en double (lignes {e.first} et {e.second}) : "
            "n'en gardez qu'une"
        ) from None


def _walk(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    """The child of a composed YAML node at one path part, or None."""
    children: list[yaml.Node]
    if isinstance(node, yaml.MappingNode):
        children = [v for k, v in node.value if k.value == str(part)]
        return children[0] if children else None
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        children = node.value
        return children[part] if part < len(children) else None
    return None


def _is_tag(node: yaml.Node | None, part: Any) -> bool:
    kind = _walk(node, "kind")
    return isinstance(kind, yaml.ScalarNode) and kind.value == part


def _locate(root: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[str, int | None]:
    """The YAML path of an error and the line it is on.

    Pydantic adds discriminator tags (`alive`, `age`…) to the location: parts that are no
    key of the document are skipped.
    """
    path, node, line = "", root, None
    for part in loc:
        child = _walk(node, part)
        if child is None:
            if _is_tag(node, part) or path.endswith(f".{part}"):
                # `not: {…}` is both the union tag and the key: the key was walked already.
                continue
            if isinstance(node, yaml.MappingNode) and not isinstance(part, int):
                # A key that is not there (unknown or missing): name it, point at its parent.
                path += f".{part}" if path else str(part)
                for k, _ in node.value:
                    if k.value == str(part):
                        line = k.start_mark.line + 1
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        node, line = child, child.start_mark.line + 1
    return path or "(root)", line


def _suggest(field: str, model_fields: list[str]) -> str:
    close = difflib.get_close_matches(field, model_fields, n=1)
    return f" (vouliez-vous dire {close[0]!r} ?)" if close else ""


_SAID_PATH = re.compile(
    r"^(?:Value error, )?(?P<path>[a-z_]+(?:\[\d+\]|\.[a-z_]+)*): (?P<rest>.*)$", re.DOTALL
)


def _parts(path: str) -> tuple[Any, ...]:
    """`cascade[2].unless[0]` as ("cascade", 2, "unless", 0)."""
    return tuple(
        int(index) if index else key for key, index in re.findall(r"([a-z_]+)|\[(\d+)\]", path)
    )


def format_validation_error(path: Path, err: ValidationError, root: yaml.Node | None = None) -> str:
    """One line per problem: file, line, YAML path, what is wrong."""
    lines = [f"{path}: définition de campagne invalide"]
    for e in err.errors():
        loc = tuple(e["loc"])
        msg = e["msg"]
        if not loc and (said := _SAID_PATH.match(msg)):
            # A check across the document names its own YAML path: point at that line.
            loc, msg = _parts(said["path"]), said["rest"]
        where, line = _locate(root, loc)
        if e["type"] == "extra_forbidden":
            msg = "clé inconnue" + _suggest(str(loc[-1]), _known_keys(loc[:-1]))
        elif e["type"] == "missing":
            msg = "clé obligatoire manquante"
        at = f"{path}:{line}" if line else str(path)
        lines.append(f"  {at}: {where}: {msg}")
    return "\n".join(lines)


def _known_keys(parent: tuple[Any, ...]) -> list[str]:
    """Field names of the model at a location of a campaign definition."""
    model: Any = CampaignDefinition
    for part in parent:
        if isinstance(part, int) or model is None:
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return []
        if part not in fields:
            # A discriminator tag: pick the union member with that kind.
            for member in _CRITERIA:
                if member.model_fields["kind"].annotation == Literal[part]:
                    model = member
                    break
            continue
        model = _inner_model(fields[part].annotation)
    return list(getattr(model, "model_fields", {}))


def _inner_model(annotation: Any) -> Any:
    """The pydantic model inside `list[X]`, `dict[str, X]`, `X | None`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def parse_definition(path: Path) -> CampaignDefinition:
    """Read and validate one `campaign.yaml` (templates are not checked here)."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = load_yaml(path, text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except FileNotFoundError as e:
        raise DefinitionError(f"{path}: fichier introuvable") from e
    except UnicodeDecodeError:
        raise DefinitionError(f"{path}: pas en UTF-8 ; enregistrez le fichier en UTF-8") from None
    except OSError as e:
        raise DefinitionError(f"{path}: illisible ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = (
            f"{mark.line + 1}: ligne {mark.line + 1}, colonne {mark.column + 1}," if mark else ""
        )
        raise DefinitionError(f"{path}:{where} YAML illisible : {e}") from e
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path}: le fichier doit être un dictionnaire de clés (id:, name:…)")
    try:
        return CampaignDefinition.model_validate(raw)
    except ValidationError as e:
        raise DefinitionError(format_validation_error(path, e, root)) from e
