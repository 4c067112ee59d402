"""SIMULATION — stands in for the advisers and the insured in `relance demo`.

Nothing here runs in production. The simulator works the call list through the same
service functions as the console (claim, record outcome), opens mailbox messages in the
mailbox (the platform polls their read status), and leaves the trace a reached goal leaves in
real life: the programme's enrolment feed for an enrolment goal, the care line or the
médecin traitant declaration in the extract for a goal observed in the data (`claims.py`).
The rest of the platform cannot tell it from real life. Every probability is a documented
parameter, per kind of goal (`parameters_for`).
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.calls.queue import claim_next, record_outcome
from campaigns.clock import paris_moment
from campaigns.definition.goals import CareActGoal, EnrolmentGoal
from campaigns.definition.model import CampaignDefinition
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import ACTIVE, SUCCESS_STATES, Action, Enrolment, Member, Person
from campaigns.policy.calendar import add_working_days, is_working_day
from channels.mailbox import LocalMailbox
from console.demo.claims import CareAct, ClaimsWriter, drug_for


@dataclass(frozen=True)
class SimulationParameters:
    """Behaviour of the simulated advisers and insured (seeded, documented, adjustable).

    Calibrated so that ~8 % of eligible people enrol within the campaign, which lands the
    demo near the seed's headline (objectives met by most échelons, ~110 % overall).
    """

    advisers: int = 3
    calls_per_adviser_per_day: int = 60
    # A call reaches the person with this probability; then the outcome is drawn below.
    p_reach: float = 0.55
    reached_outcomes: dict[str, float] = field(
        default_factory=lambda: {
            "enrolled_on_call": 0.04,
            "will_enrol_online": 0.10,
            "refused": 0.66,
            "callback": 0.15,
            "objects": 0.05,
        }
    )
    unreached_outcomes: dict[str, float] = field(
        default_factory=lambda: {
            "no_answer": 0.55,
            "busy": 0.10,
            "voicemail": 0.30,
            "wrong_number": 0.05,
        }
    )
    # "Will enrol online" turns into an enrolment with this probability, 1–10 days later.
    p_enrol_after_promise: float = 0.45
    # A mailbox message is read with this probability within a week; a reader may enrol.
    p_mailbox_read: float = 0.55
    p_enrol_after_read: float = 0.04
    # A letter leads to enrolment (paper form or online) with this probability, 5–20 days later.
    p_enrol_after_letter: float = 0.02
    # Anyone still in the campaign, holdout included, may enrol on their own (doctor, online).
    daily_spontaneous_enrolment: float = 0.0001
    # A mailbox message is opened 0 to this many days after it is deposited.
    read_delay_days: int = 3


# A flu shot: most people aged 65+ get one each season whatever we do (synth: about half);
# a reminder moves some of the others. Nobody is vaccinated on the phone.
FLU = SimulationParameters(
    p_reach=0.6,
    reached_outcomes={
        "enrolled_on_call": 0.0,
        "will_enrol_online": 0.45,
        "refused": 0.35,
        "callback": 0.15,
        "objects": 0.05,
    },
    p_enrol_after_promise=0.6,
    p_mailbox_read=0.6,
    p_enrol_after_read=0.12,
    p_enrol_after_letter=0.08,
    daily_spontaneous_enrolment=0.004,
)
# A médecin traitant declaration: slow on one's own, helped by a call that reaches.
MEDECIN_TRAITANT = SimulationParameters(
    reached_outcomes={
        "enrolled_on_call": 0.0,
        "will_enrol_online": 0.35,
        "refused": 0.45,
        "callback": 0.15,
        "objects": 0.05,
    },
    p_enrol_after_promise=0.5,
    p_mailbox_read=0.55,
    p_enrol_after_read=0.10,
    p_enrol_after_letter=0.05,
    daily_spontaneous_enrolment=0.001,
)


def parameters_for(definition: CampaignDefinition) -> SimulationParameters:
    """The behaviour matching the campaign's goal: an enrolment (sophia's calibration), a
    flu shot or another care act, a médecin traitant declaration."""
    kind = definition.goal.kind
    if kind == "care_act":
        return FLU
    if kind == "registry_fact":
        return MEDECIN_TRAITANT
    return SimulationParameters()


class Simulator:
    """Plays one day of advisers and insured at a time."""

    def __init__(
        self,
        *,
        engine: Engine,
        definition: CampaignDefinition,
        feeds_dir: Path,
        seed: int,
        params: SimulationParameters | None = None,
        extract: Path | None = None,
        mailbox: LocalMailbox | None = None,
    ) -> None:
        self.engine = engine
        self.definition = definition
        self.feeds_dir = feeds_dir
        self.params = params or parameters_for(definition)
        self.rng = np.random.default_rng(seed)
        # Read delays draw from their own stream: the other draws stay as they were.
        self.read_rng = np.random.default_rng([seed, 1])
        self.mailbox = mailbox
        self.reads: dict[date, list[str]] = defaultdict(list)
        self.goal_kind: str = definition.goal.kind
        self.claims = ClaimsWriter(extract) if extract is not None and self.observed else None
        self._act: tuple[str, str] | None = None
        self.pending: dict[date, list[tuple[str, int, str]]] = defaultdict(list)
        self.promised: set[tuple[str, int]] = set()
        self.seen_actions: set[int] = set()
        self.calls_made = 0

    def describe(self) -> dict[str, object]:
        """The parameters, for the demo's printout."""
        return asdict(self.params)

    def _draw(self, table: dict[str, float]) -> str:
        names = list(table)
        p = np.array([table[n] for n in names])
        return str(names[int(self.rng.choice(len(names), p=p / p.sum()))])

    def _enrol_later(self, day: date, key: tuple[str, int], lo: int, hi: int, channel: str) -> None:
        if key in self.promised:
            return
        self.promised.add(key)
        self.pending[day + timedelta(days=int(self.rng.integers(lo, hi + 1)))].append(
            (key[0], key[1], channel)
        )

    def work_call_list(self, day: date) -> int:
        """The advisers' day: claim, call, record, until the list or their time runs out."""
        if not is_working_day(day, "75"):
            return 0
        made = 0
        capacity = self.params.calls_per_adviser_per_day
        start = paris_moment(day, time(9, 0))
        for n in range(self.params.advisers * capacity):
            adviser = f"sim-adviser-{n % self.params.advisers + 1}"
            # Spread the calls over the working day; each takes ~7 minutes per adviser.
            now = start + timedelta(minutes=7 * (n // self.params.advisers))
            with session_scope(self.engine) as s:
                claim = claim_next(
                    session=s,
                    adviser=adviser,
                    now=now,
                    definitions={self.definition.id: self.definition},
                )
                if claim is None:
                    break
                person = s.get(Person, claim.person_id)
                assert person is not None
                reached = self.rng.random() < self.params.p_reach
                outcome = self._draw(
                    self.params.reached_outcomes if reached else self.params.unreached_outcomes
                )
                callback_at = None
                if outcome == "callback":
                    cb_day = add_working_days(day, 1, person.departement)
                    callback_at = paris_moment(cb_day, time(14, 0))
                record_outcome(
                    session=s,
                    action_id=claim.action_id,
                    adviser=adviser,
                    outcome=outcome,
                    now=now,
                    definition=self.definition,
                    callback_at=callback_at,
                    notes="simulated call",
                )
                key = (person.ben_nir_psa, person.ben_rng_gem)
                if outcome == "enrolled_on_call":
                    self._enrol_later(day, key, 0, 0, "phone")
                elif (
                    outcome == "will_enrol_online"
                    and self.rng.random() < self.params.p_enrol_after_promise
                ):
                    self._enrol_later(day, key, 1, 10, "online")
            made += 1
        self.calls_made += made
        return made

    def react_to_messages(self, day: date) -> None:
        """The insured read mailbox messages and letters sent today; some will enrol."""
        p = self.params
        with session_scope(self.engine) as s:
            rows = s.exec(
                select(  # type: ignore[call-overload]  # five columns: past sqlmodel overloads
                    Action.id,
                    Action.channel,
                    Action.provider_id,
                    Person.ben_nir_psa,
                    Person.ben_rng_gem,
                )
                .join(Person, col(Person.id) == col(Action.person_id))
                .where(
                    col(Action.channel).in_(["mailbox", "letter"]),
                    col(Action.state).in_(SUCCESS_STATES),
                    Action.done_on == day,
                    Action.campaign_id == self.definition.id,
                )
            ).all()
        for action_id, channel, provider_id, nir_psa, rng in rows:
            if action_id is None or action_id in self.seen_actions:
                continue
            self.seen_actions.add(action_id)
            key = (nir_psa, rng)
            if channel == "mailbox":
                read = self.rng.random() < p.p_mailbox_read
                if read and provider_id:
                    delay = int(self.read_rng.integers(0, p.read_delay_days + 1))
                    self.reads[day + timedelta(days=delay)].append(provider_id)
                if read and self.rng.random() < p.p_enrol_after_read:
                    self._enrol_later(day, key, 1, 7, "online")
            elif self.rng.random() < p.p_enrol_after_letter:
                self._enrol_later(day, key, 5, 20, "paper" if self.rng.random() < 0.5 else "online")

    def spontaneous(self, day: date) -> None:
        """Members enrol on their own (their doctor, a visit to ameli): the baseline."""
        with session_scope(self.engine) as s:
            keys = s.exec(
                select(Person.ben_nir_psa, Person.ben_rng_gem)
                .join(Member, col(Member.person_id) == col(Person.id))
                .where(Member.campaign_id == self.definition.id, Member.status == ACTIVE)
            ).all()
        draws = self.rng.random(len(keys))
        for key, u in zip(keys, draws, strict=True):
            if u < self.params.daily_spontaneous_enrolment:
                self._enrol_later(
                    day, (key[0], key[1]), 0, 0, "doctor" if self.rng.random() < 0.5 else "online"
                )

    @property
    def observed(self) -> bool:
        """Whether the goal is read in the extract (a care act, a registry fact)."""
        return self.goal_kind in ("care_act", "registry_fact")

    def open_messages(self, day: date) -> int:
        """The insured open the mailbox messages they read today (the mailbox records it)."""
        due = self.reads.pop(day, [])
        if self.mailbox is not None:
            for provider_id in due:
                self.mailbox.mark_read(provider_id)
        return len(due)

    def _goal_act(self) -> tuple[str, str]:
        """The care act that reaches a care_act goal: its source and one code of it."""
        if self._act is None:
            goal = self.definition.goal
            assert isinstance(goal, CareActGoal)
            code = str(goal.codes[0])
            if goal.source == "drug" and self.claims is not None:
                code = drug_for(self.claims.extract, [str(c) for c in goal.codes])
            self._act = (str(goal.source), code)
        return self._act

    def write_claims(self, day: date) -> dict[str, int]:
        """The day's goals as the extract will show them: care lines or declarations."""
        due = self.pending.pop(day, [])
        if self.claims is None:
            return {}
        for nir_psa, rng, _channel in sorted(due):
            if self.goal_kind == "registry_fact":
                self.claims.add_declaration((nir_psa, rng), day)
            else:
                source, code = self._goal_act()
                self.claims.add_care(CareAct(key=(nir_psa, rng), day=day, source=source, code=code))
        return self.claims.flush()

    def write_feed(self, day: date) -> Path | None:
        """The programme's enrolment file for the day, as the real programme would drop it."""
        if self.observed:
            self.write_claims(day)
            return None
        due = self.pending.pop(day, [])
        if not due:
            return None
        with session_scope(self.engine) as s:
            known = set(
                s.exec(
                    select(Enrolment.ben_nir_psa, Enrolment.ben_rng_gem).where(
                        Enrolment.campaign_id == self.definition.id
                    )
                ).all()
            )
        self.feeds_dir.mkdir(parents=True, exist_ok=True)
        path = self.feeds_dir / f"enrolments_{day.isoformat()}.csv"
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            goal = self.definition.goal
            date_column = goal.date_column if isinstance(goal, EnrolmentGoal) else "date"
            w.writerow(["ben_nir_psa", "ben_rng_gem", date_column, "canal"])
            for nir_psa, rng, channel in sorted(due):
                if (nir_psa, rng) not in known:
                    w.writerow([nir_psa, rng, day.isoformat(), channel])
        os.replace(tmp, path)
        return path

    def play(self, day: date) -> Path | None:
        """The simulated part of one day, after the platform's own stages."""
        self.work_call_list(day)
        self.react_to_messages(day)
        self.open_messages(day)
        self.spontaneous(day)
        return self.write_feed(day)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A Paris moment, for tests and the demo."""
    return paris_moment(day, time(hour, minute))
