"""The pause between targeting and launch: the run waits for the decision, holding no process.

The run suspends (`suspend_flow_run`): its process exits and nothing is held while échelons
review the list in the console or the CLI. The decision arrives as typed run input
(`Approval`), sent from Prefect's UI, the console or `relance validation approve|reject`;
Prefect then starts the run again from the top and `suspend_flow_run` returns that input.
Every decision is applied through `campaigns.app.validation.decide_list`, which audits it
under the approver's name. One run waits per list: a later scheduled run finds the list held
by a live run and ends. A list past its deadline is expired by the next run (or targeting).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.input.actions import create_flow_run_input, read_flow_run_input
from sqlalchemy import update
from sqlmodel import Session, col, select

from campaigns.app.validation import decide_list
from campaigns.cascade.review import ValidationError, expire_overdue, list_status, pending_list
from campaigns.clock import PARIS, paris_today, utcnow
from campaigns.definition.rendering import date_fr
from campaigns.ledger.db import get_engine, session_scope
from campaigns.ledger.models import LIST_PENDING, Campaign, TargetList
from campaigns.settings import get_settings
from flows.runtime import configure_database


class Approval(RunInput):
    """A campaign manager's decision on a pending list."""

    approved: bool
    approver: str
    reason: str = ""


def seconds_until_deadline(deadline: date, now: datetime) -> int:
    """Seconds from now to the end of the deadline day in Paris (at least one)."""
    end = datetime.combine(deadline + timedelta(days=1), time(0, 0), tzinfo=PARIS)
    return max(1, int((end - now).total_seconds()))


def describe(*, session: Session, target_list: TargetList, base_url: str) -> str:
    """The pause form (French Markdown): the list, its échelons, the deadline, the console link."""
    cid = target_list.campaign_id
    campaign = session.get(Campaign, cid)
    name = campaign.name if campaign else cid
    rows = [
        "| Échelon | Personnes | Retirées | Validation de l'échelon |",
        "|---|---:|---:|---|",
    ]
    for echelon, v in list_status(session=session, target_list=target_list).per_echelon.items():
        signed = (
            f"validée par {v['signed_by']} le {date_fr(paris_today(v['signed_at']))}"
            if v["signed_by"]
            else "**pas encore validée**"
        )
        rows.append(f"| {echelon} | {v['listed']} | {v['excluded']} | {signed} |")
    link = f"{base_url.rstrip('/')}/campaigns/{cid}/validation"
    return "\n".join(
        [
            f"## Liste n° {target_list.id} de la campagne « {name} » ({cid})",
            "",
            *rows,
            "",
            f"**Décision attendue au plus tard le {date_fr(target_list.deadline)} à minuit "
            "(heure de Paris)** : passé ce délai, la liste expire et personne n'est contacté.",
            "",
            f"Revoir la liste dans la console : [{link}]({link})",
            "",
            "Cochez `approved` pour lancer la liste (chaque échelon doit l'avoir validée) ; "
            "un refus doit être motivé dans `reason`. Votre nom dans `approver` est inscrit "
            "au journal d'audit.",
        ]
    )


def run_waits(flow_run_id: str) -> bool:
    """Whether that flow run is still in charge of its list (it exists and has not ended)."""
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(uuid.UUID(flow_run_id))
        except ObjectNotFound:
            return False
    return run.state is not None and not run.state.is_final()


def claim(
    *, session: Session, target_list: TargetList, run_id: str, still_waits: Callable[[str], bool]
) -> str:
    """Make this run the one waiting for the list unless a live run already is; the owner's id."""
    held = target_list.flow_run_id
    if held == run_id or (held and still_waits(held)):
        return held
    unchanged = (
        col(TargetList.flow_run_id) == held if held else col(TargetList.flow_run_id).is_(None)
    )
    # Compare-and-set: of two runs taking the list at once, only one update matches.
    session.execute(
        update(TargetList)
        .where(col(TargetList.id) == target_list.id, unchanged)
        .values(flow_run_id=run_id)
    )
    session.refresh(target_list)
    return target_list.flow_run_id or ""


def _refused_key(key: str) -> str:
    return f"{key}-refused"


@flow(name="list-validation")
def list_validation(campaign_id: str) -> dict[str, Any]:
    """Wait, suspended, for the decision on the campaign's pending list, and apply it."""
    log = get_run_logger()
    configure_database()
    engine = get_engine()
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    with session_scope(engine) as s:
        lst = pending_list(session=s, campaign_id=campaign_id)
        if lst is None:
            # Restarted after a decision taken in the console or the CLI: report it.
            mine = s.exec(select(TargetList).where(TargetList.flow_run_id == run_id)).first()
            if mine is not None:
                return {"state": mine.state, "list_id": mine.id, "detail": mine.decided_by}
            return {"state": "none", "detail": "aucune liste en attente de validation"}
        today = paris_today()
        if today > lst.deadline:
            expired = expire_overdue(session=s, campaign_id=campaign_id, today=today)
            return {"state": "expired", "list_id": lst.id, "detail": expired and expired.reason}
        owner = claim(session=s, target_list=lst, run_id=run_id, still_waits=run_waits)
        if owner != run_id:
            log.info("la liste %s est déjà attendue par le run %s", lst.id, owner)
            return {"state": "awaited", "list_id": lst.id, "detail": owner}
        list_id, deadline = lst.id or 0, lst.deadline
    attempt = 0
    while True:
        attempt += 1
        key = f"list-{list_id}-{attempt}"
        with session_scope(engine) as s:
            text = describe(
                session=s,
                target_list=s.get_one(TargetList, list_id),
                base_url=get_settings().public_base_url,
            )
        form = Approval.with_initial_data(description=text)
        # Returns at once, with the input, for a key this run was already resumed from.
        decision = suspend_flow_run(
            wait_for_input=form, timeout=seconds_until_deadline(deadline, utcnow()), key=key
        )
        if read_flow_run_input(_refused_key(key)) is not None:
            continue  # a decision refused before this restart: never apply it again
        with session_scope(engine) as s:
            lst = s.get_one(TargetList, list_id)
            if lst.state != LIST_PENDING:  # decided in the console or the CLI, which resumed us
                return {"state": lst.state, "list_id": list_id, "detail": lst.decided_by}
            try:
                done = decide_list(
                    session=s,
                    actor=decision.approver,
                    campaign_id=campaign_id,
                    decision="approve" if decision.approved else "reject",
                    reason=decision.reason,
                    today=paris_today(),
                    list_id=list_id,
                    via=f"prefect flow run {run_id}",
                )
            except ValidationError as e:
                refusal = str(e)
            else:
                state = "approved" if done.decision == "approve" else "rejected"
                return {"state": state, "list_id": list_id, "counts": done.counts}
        log.warning(
            "décision de %s non appliquée : %s ; nouvelle attente", decision.approver, refusal
        )
        create_flow_run_input(key=_refused_key(key), value=refusal)


def resume_with_decision(flow_run_id: str | None, payload: dict[str, Any]) -> str:
    """Hand an applied decision to the run waiting for the list, if any; say what happened."""
    if not flow_run_id:
        return "aucun run Prefect n'attend cette liste"
    try:
        from prefect.flow_runs import resume_flow_run

        resume_flow_run(uuid.UUID(flow_run_id), run_input=payload)
        return f"run Prefect {flow_run_id} relancé"
    except Exception as e:  # the decision is recorded; the run ends when it next starts
        return f"run Prefect {flow_run_id} non relancé ({type(e).__name__}) ; décision enregistrée"
