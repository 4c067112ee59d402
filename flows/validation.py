"""The pause between targeting and launch: the flow waits for a campaign manager's decision.

Échelons review their lists in the console (or the CLI) meanwhile; the decision arrives as
typed run input (`Approval`) — sent by `relance validation approve`, the console, or the
Prefect UI — and is applied through the same service, so it is recorded once whichever way
it came. A list not decided by its deadline expires and is not launched.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from campaigns.clock import utcnow
from campaigns.db import get_engine, session_scope
from campaigns.models import TargetList
from campaigns.validation import (
    ValidationError,
    approve,
    expire_overdue,
    list_status,
    pending_list,
    reject,
)
from flows.dates import paris_today

PARIS = ZoneInfo("Europe/Paris")


class Approval(RunInput):
    """A campaign manager's decision on a pending list."""

    approved: bool
    approver: str
    reason: str = ""


def seconds_until_deadline(deadline: date, now: datetime) -> int:
    """Seconds from now to the end of the deadline day in Paris (at least one)."""
    end = datetime.combine(deadline + timedelta(days=1), time(0, 0), tzinfo=PARIS)
    return max(1, int((end - now).total_seconds()))


@flow(name="list-validation")
def list_validation(
    campaign_id: str = "sophia-ald8", poll_interval: int = 10, max_wait_seconds: int | None = None
) -> dict[str, Any]:
    """Wait for the decision on the campaign's pending list, then launch, reject or expire it."""
    log = get_run_logger()
    engine = get_engine()
    ctx = get_run_context()
    run_id = str(ctx.flow_run.id) if getattr(ctx, "flow_run", None) else None  # type: ignore[union-attr]
    with session_scope(engine) as s:
        lst = pending_list(session=s, campaign_id=campaign_id)
        if lst is None:
            return {"state": "none", "detail": "no list awaits validation"}
        lst.flow_run_id = run_id
        list_id, deadline = lst.id, lst.deadline
    attempt = 0
    while True:
        attempt += 1
        wait = seconds_until_deadline(deadline, utcnow())
        if max_wait_seconds is not None:
            wait = min(wait, max_wait_seconds)
        try:
            decision = pause_flow_run(
                wait_for_input=Approval,
                timeout=wait,
                poll_interval=poll_interval,
                key=f"list-{list_id}-{attempt}",
            )
        except FlowPauseTimeout:
            with session_scope(engine) as s:
                expired = expire_overdue(
                    session=s,
                    campaign_id=campaign_id,
                    today=max(paris_today(), deadline + timedelta(days=1)),
                )
                why = expired.reason if expired else "decided elsewhere"
            log.warning("list %s not launched: %s", list_id, why)
            return {"state": "expired", "list_id": list_id, "detail": why}
        assert decision is not None
        with session_scope(engine) as s:
            lst = pending_list(session=s, campaign_id=campaign_id) or s.get_one(TargetList, list_id)
            try:
                if decision.approved:
                    counts = approve(
                        session=s, target_list=lst, by=decision.approver, today=paris_today()
                    )
                    return {"state": "approved", "list_id": list_id, "counts": counts}
                reject(
                    session=s,
                    target_list=lst,
                    by=decision.approver,
                    reason=decision.reason or "rejected",
                    today=paris_today(),
                )
                return {"state": "rejected", "list_id": list_id, "detail": decision.reason}
            except ValidationError as e:
                status = list_status(session=s, target_list=lst)
                log.warning(
                    "decision by %s not applied: %s (missing: %s); waiting again",
                    decision.approver,
                    e,
                    ", ".join(status.missing_signoffs) or "none",
                )


def resume_with_decision(flow_run_id: str | None, payload: dict[str, Any]) -> str:
    """Hand a decision to the paused flow run, if one waits; say what happened."""
    if not flow_run_id:
        return "no flow run waits for this list"
    try:
        import uuid

        from prefect.flow_runs import resume_flow_run

        resume_flow_run(uuid.UUID(flow_run_id), run_input=payload)
        return f"flow run {flow_run_id} resumed"
    except Exception as e:  # the decision is recorded; the flow finds it when it wakes
        return f"flow run {flow_run_id} not resumed ({type(e).__name__}); decision recorded"
