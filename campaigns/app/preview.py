"""Preview a campaign before anything is sent: its audience on a day (a dry run of the rule on
the extract, the reasons of the others counted), its cascade as a timeline, each template
rendered for sample people, and what the contact policy would defer because of other campaigns.

Works for a draft (its files, never seen by the flows) as for a registered or shipped campaign
(the version in force today). Nothing is written but the audit event.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy import tuple_
from sqlmodel import Session, col, select

from campaigns.app.drafts import DRAFT, draft_files
from campaigns.clock import PARIS, utcnow
from campaigns.definition.catalog import Campaign, campaign_by_id, load_campaign
from campaigns.definition.files import check_files, write_files
from campaigns.definition.model import CampaignDefinition, DefinitionError, Step
from campaigns.definition.reasons import UnknownReason, explain, targeting_reason_label
from campaigns.definition.rendering import (
    CHANNEL_LABELS,
    render_message,
    sample_variant,
)
from campaigns.ledger.audit import record
from campaigns.ledger.models import CampaignDraft, Person
from campaigns.policy.decision import decide, load_facts, pressure_from
from campaigns.settings import get_settings
from targeting.rule import Care

# Eligible people whose ledger facts are read at once for the policy (one IN list each).
FACTS_CHUNK = 1000
SAMPLE_VARIANTS = (("prioritaire", True), ("non prioritaire", False))


class PreviewError(ValueError):
    """A preview that cannot be made; the message says why, in French."""


@dataclass(frozen=True)
class Count:
    """A reason (its code and its words) and how many people it concerns."""

    code: str
    label: str
    n: int


@dataclass(frozen=True)
class EchelonCount:
    """The eligible people of one échelon, and how many of them are a priority."""

    echelon: str
    eligible: int
    priority: int


@dataclass(frozen=True)
class Audience:
    """The dry run's counts on a day."""

    day: date
    insured: int
    eligible: int
    per_echelon: list[EchelonCount]
    reasons: list[Count]


@dataclass(frozen=True)
class TimelineStep:
    """One step of the cascade as the manager reads it."""

    id: str
    channel: str
    channel_label: str
    window: str
    attempts: int
    conditions: list[str]
    template: str


@dataclass(frozen=True)
class Rendered:
    """One template rendered for a sample person."""

    step_id: str
    channel: str
    variant: str
    priority: bool
    subject: str
    body: str
    error: str | None = None

    @property
    def is_letter(self) -> bool:
        return self.channel == "letter"


@dataclass(frozen=True)
class Preview:
    """Everything the preview page shows."""

    campaign_id: str
    name: str
    source: str
    day: date
    anchor: str
    timeline: list[TimelineStep]
    rendered: list[Rendered]
    audience: Audience | None = None
    audience_error: str | None = None
    first_step: str | None = None
    known: int = 0
    deferred: list[Count] = field(default_factory=list)


def _labels(definition: CampaignDefinition) -> dict[str, str]:
    return {n.id: n.label for n in definition.targeting.nodes() if isinstance(n, Care) and n.label}


def _reason_words(code: str, labels: dict[str, str]) -> str:
    try:
        return targeting_reason_label(code, labels)
    except UnknownReason:
        return code


def audience_counts(
    rows: Sequence[dict[str, Any]], day: date, definition: CampaignDefinition
) -> Audience:
    """Eligible per échelon, and the reasons of the others counted (a person may have several)."""
    labels = _labels(definition)
    eligible: Counter[str] = Counter()
    priority: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for r in rows:
        if r.get("eligible"):
            eligible[str(r.get("echelon"))] += 1
            priority[str(r.get("echelon"))] += bool(r.get("priority"))
            continue
        for reason in str(r.get("reasons") or "").split(";"):
            if reason.strip():
                reasons[reason.strip()] += 1
    return Audience(
        day=day,
        insured=len(rows),
        eligible=sum(eligible.values()),
        per_echelon=[EchelonCount(e, n, priority[e]) for e, n in sorted(eligible.items())],
        reasons=[Count(c, _reason_words(c, labels), n) for c, n in reasons.most_common()],
    )


def _days(n: int) -> str:
    return f"J{n:+d}" if n else "J"


def _window(step: Step, anchor: str) -> str:
    start = _days(step.start_days)
    if step.end_days is None:
        text = f"à partir de {start} (jusqu'à la fin de la campagne)"
    else:
        text = f"de {start} à {_days(step.end_days)}"
    bounds = []
    if step.not_before is not None:
        bounds.append(f"pas avant {_bound(step.not_before)}")
    if step.not_after is not None:
        bounds.append(f"pas après {_bound(step.not_after)}")
    return f"{text} par rapport à la {anchor}" + (f" ; {', '.join(bounds)}" if bounds else "")


def _bound(value: date | str) -> str:
    return value.strftime("%d/%m/%Y") if isinstance(value, date) else f"« {value} »"


def timeline(definition: CampaignDefinition) -> list[TimelineStep]:
    """The cascade's steps in the order they start, with their windows in words."""
    anchor = definition.labels.anchor
    out = []
    for s in sorted(definition.cascade, key=lambda s: s.start_days):
        conditions = [f"seulement si « {f} »" for f in s.requires]
        conditions += [f"sauf si « {f} »" for f in s.unless]
        if s.notify:
            conditions.append(
                f"avis par {CHANNEL_LABELS.get(s.notify.channel, s.notify.channel)} "
                f"({s.notify.template})"
            )
        out.append(
            TimelineStep(
                id=s.id,
                channel=s.channel,
                channel_label=CHANNEL_LABELS.get(s.channel, s.channel),
                window=_window(s, anchor),
                attempts=s.attempts.max,
                conditions=conditions,
                template=s.template,
            )
        )
    return out


def _render(campaign: Campaign, step: Step, variant: str, priority: bool) -> Rendered:
    ctx = sample_variant(campaign.definition, step.id, priority=priority)
    try:
        subject, body = render_message(campaign.env, step.template, ctx)
    except Exception as e:  # a broken template is shown as such, the rest of the page stays
        return Rendered(step.id, step.channel, variant, priority, "", "", error=str(e))
    return Rendered(step.id, step.channel, variant, priority, subject, body)


@contextmanager
def _opened(session: Session, campaign_id: str) -> Iterator[tuple[Campaign, str]]:
    """The campaign to preview and what it is: a draft's files, else the version in force."""
    draft = session.get(CampaignDraft, campaign_id)
    if draft is not None:
        files = draft_files(session=session, campaign_id=campaign_id)
        checked = check_files(files, campaign_id=campaign_id)
        if not checked.ok:
            raise PreviewError(
                f"{campaign_id} : le brouillon a {len(checked.problems)} problème(s) ; "
                "corrigez-les (page du brouillon) avant de prévisualiser"
            )
        with tempfile.TemporaryDirectory(prefix="relance-preview-") as tmp:
            folder = Path(tmp) / campaign_id
            write_files(folder, files)
            words = "brouillon" if draft.state == DRAFT else "prête (version 1)"
            yield load_campaign(folder), words
        return
    try:
        campaign = campaign_by_id(campaign_id)
    except DefinitionError as e:
        raise PreviewError(f"{campaign_id} : campagne inconnue ({e})") from None
    yield campaign, "version en vigueur"


def policy_deferrals(
    *,
    session: Session,
    definition: CampaignDefinition,
    keys: list[tuple[str, int]],
    day: date,
) -> tuple[str | None, int, list[Count]]:
    """For the eligible people already in the ledger: what the policy would say of the first
    step on the day (other campaigns' contacts, oppositions, death, missing details)."""
    if not definition.cascade or not keys:
        return None, 0, []
    first = min(definition.cascade, key=lambda s: s.start_days)
    pressure = pressure_from(get_settings())
    moment = datetime.combine(day, time(10, 0), tzinfo=PARIS)
    counts: Counter[str] = Counter()
    known = 0
    person_key = tuple_(col(Person.ben_nir_psa), col(Person.ben_rng_gem))
    for i in range(0, len(keys), FACTS_CHUNK):
        batch = session.exec(select(Person).where(person_key.in_(keys[i : i + FACTS_CHUNK]))).all()
        facts = load_facts(session, batch, today=day, pressure=pressure)
        for p in batch:
            known += 1
            decision = decide(
                facts=facts[p.id or 0],
                channel=first.channel,
                now=moment,
                campaign=definition.id,
                step=first.id,
                pressure=pressure,
            )
            counts.update(decision.reasons)
    return first.id, known, [Count(c, explain(c), n) for c, n in counts.most_common()]


def preview_campaign(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    day: date,
    extract: Path | None,
    now: datetime | None = None,
) -> Preview:
    """The preview page's content for a draft or a campaign on `day` (audited)."""
    now = now or utcnow()
    with _opened(session, campaign_id) as (campaign, source):
        d = campaign.definition
        rendered = [
            _render(campaign, s, variant, priority)
            for s in sorted(d.cascade, key=lambda s: s.start_days)
            for variant, priority in SAMPLE_VARIANTS
        ]
        audience: Audience | None = None
        error: str | None = None
        first: str | None = None
        known, deferred = 0, list[Count]()
        if extract is None or not Path(extract).is_dir():
            error = (
                f"aucun extrait à {extract} : le dénombrement demande l'extrait du jour "
                "(RELANCE_EXTRACT_DIR)"
            )
        else:
            # heavy optional dependency: DuckDB and pyarrow, only when the audience is counted.
            from targeting.engine import run_targeting

            # heavy optional dependency: as above (the extract's checks load with the engine).
            from targeting.extract import ExtractError

            try:
                table = run_targeting(
                    rule=d.targeting, extract=Path(extract), as_of=day, include_ineligible=True
                )
            except (ExtractError, FileNotFoundError, KeyError) as e:
                error = f"extrait illisible : {e}"
            else:
                rows = table.select(
                    ["ben_nir_psa", "ben_rng_gem", "eligible", "priority", "echelon", "reasons"]
                ).to_pylist()
                audience = audience_counts(rows, day, d)
                keys = [(r["ben_nir_psa"], int(r["ben_rng_gem"])) for r in rows if r["eligible"]]
                first, known, deferred = policy_deferrals(
                    session=session, definition=d, keys=keys, day=day
                )
        record(
            session=session,
            actor=actor,
            action="campaign_preview",
            target=campaign_id,
            detail={
                "day": day.isoformat(),
                "source": source,
                "eligible": audience.eligible if audience else None,
            },
            now=now,
        )
        return Preview(
            campaign_id=d.id,
            name=d.name,
            source=source,
            day=day,
            anchor=d.labels.anchor,
            timeline=timeline(d),
            rendered=rendered,
            audience=audience,
            audience_error=error,
            first_step=first,
            known=known,
            deferred=deferred,
        )


def preview_letter(
    *,
    session: Session,
    actor: str,
    campaign_id: str,
    step_id: str,
    priority: bool,
    now: datetime | None = None,
) -> bytes:
    """A letter step rendered for the sample person, as the PDF the print house would get."""
    # heavy optional dependency: WeasyPrint, only when a letter is asked for.
    from channels.pdf_letters import render_chunk

    with _opened(session, campaign_id) as (campaign, _source):
        step = next((s for s in campaign.definition.cascade if s.id == step_id), None)
        if step is None or step.channel != "letter":
            raise PreviewError(f"{campaign_id} : pas d'étape courrier « {step_id} »")
        variant = "prioritaire" if priority else "non prioritaire"
        rendered = _render(campaign, step, variant, priority)
        if rendered.error:
            raise PreviewError(f"{step.template} : {rendered.error}")
        pdf, _pages = render_chunk([rendered.body])
    record(
        session=session,
        actor=actor,
        action="campaign_preview_letter",
        target=campaign_id,
        detail={"step": step_id, "variant": variant},
        now=now or utcnow(),
    )
    return pdf
