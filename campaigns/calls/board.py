"""The supervisor's live board: today's calls per campaign and échelon, each adviser's figures
and state, the totals and the alerts a supervisor acts on (all in French, Paris time)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from campaigns.clock import PARIS, paris_today
from campaigns.definition.model import REACHED_OUTCOMES
from campaigns.ledger.models import DONE, QUEUED, Action, AuditEvent, Member, User

# An adviser whose page sent nothing for this long is shown as absent (the page beats every 20 s).
ABSENT_AFTER = timedelta(seconds=60)
# An adviser present but with no call claimed or saved for this long raises an alert.
IDLE_AFTER = timedelta(minutes=10)
# A queue with calls due and nothing saved for this long is not draining.
STALL_AFTER = timedelta(minutes=15)
# A callback whose promised time passed by more than this is overdue.
CALLBACK_GRACE = timedelta(minutes=15)

STATE_LABELS = {
    "in_call": "en appel",
    "available": "disponible",
    "idle": "inactif",
    "absent": "absent",
}


def _empty_row() -> dict[str, Any]:
    return {
        "calls": 0,
        "reached": 0,
        "queue": 0,
        "callbacks_due": 0,
        "enrolled_on_call": 0,
        "outcomes": defaultdict(int),
    }


def board_rows(*, session: Session, now: datetime) -> dict[str, Any]:
    """Today's figures per campaign and échelon, and who holds a call now."""
    s = session
    today = paris_today(now)
    per: dict[tuple[str, str], dict[str, Any]] = defaultdict(_empty_row)
    for cid, echelon, outcome, n in s.exec(
        select(Action.campaign_id, Member.echelon, Action.outcome, func.count())
        .join(Member, col(Member.id) == col(Action.member_id))
        .where(Action.channel == "phone", Action.state == DONE, Action.done_on == today)
        .group_by(col(Action.campaign_id), col(Member.echelon), col(Action.outcome))
    ):
        row = per[(cid, echelon)]
        row["calls"] += n
        row["outcomes"][outcome] += n
        if outcome in REACHED_OUTCOMES:
            row["reached"] += n
        if outcome == "enrolled_on_call":
            row["enrolled_on_call"] += n
    for cid, echelon, due_at, n in s.exec(
        select(Action.campaign_id, Member.echelon, Action.due_at, func.count())
        .join(Member, col(Member.id) == col(Action.member_id))
        .where(Action.channel == "phone", Action.state == QUEUED, col(Action.due_on) <= today)
        .group_by(col(Action.campaign_id), col(Member.echelon), col(Action.due_at))
    ):
        per[(cid, echelon)]["queue"] += n
        if due_at is not None:
            per[(cid, echelon)]["callbacks_due"] += n
    holders = s.exec(
        select(Action.claimed_by, Action.campaign_id, Action.lease_until).where(
            Action.state == QUEUED,
            col(Action.claimed_by).is_not(None),
            col(Action.lease_until) >= now,
        )
    ).all()
    since = now - timedelta(hours=1)
    last_hour = s.exec(
        select(func.count())
        .select_from(Action)
        .where(Action.channel == "phone", Action.state == DONE, col(Action.updated_at) >= since)
    ).one()
    people = advisers_today(session=s, now=now, in_call={h[0] for h in holders})
    out = {
        "per": dict(sorted(per.items())),
        "holders": holders,
        "last_hour": last_hour,
        "totals": _totals(per),
        **people,
    }
    out["alerts"] = alerts(session=s, now=now, board=out)
    return out


def _totals(per: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """Every campaign and échelon together."""
    t = _empty_row()
    for row in per.values():
        for k in ("calls", "reached", "queue", "callbacks_due", "enrolled_on_call"):
            t[k] += row[k]
        for o, n in row["outcomes"].items():
            t["outcomes"][o] += n
    t["reach_rate"] = t["reached"] / t["calls"] if t["calls"] else None
    return t


def _adviser_calls(session: Session, today: Any) -> dict[str, dict[str, int]]:
    """Per adviser: calls saved today and how many reached the person."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"calls": 0, "reached": 0})
    for who, outcome, n in session.exec(
        select(Action.claimed_by, Action.outcome, func.count())
        .where(Action.channel == "phone", Action.state == DONE, Action.done_on == today)
        .group_by(col(Action.claimed_by), col(Action.outcome))
    ):
        if who is None:
            continue
        out[who]["calls"] += n
        if outcome in REACHED_OUTCOMES:
            out[who]["reached"] += n
    return out


def advisers_today(*, session: Session, now: datetime, in_call: set[str | None]) -> dict[str, Any]:
    """Who is connected and in what state, with each adviser's figures of the day.

    Handling time runs from the number shown to the outcome saved. An adviser is absent when
    neither a heartbeat of their page nor any action of theirs came in the last minute.
    """
    start = datetime.combine(paris_today(now), datetime.min.time(), tzinfo=PARIS)
    users = {u.username: u for u in session.exec(select(User).where(User.role == "adviser")).all()}
    # Anything an adviser did today counts as activity (claims, reveals, outcomes, pages).
    last_work: dict[str, datetime] = {
        who: at
        for who, at in session.exec(
            select(AuditEvent.actor, func.max(AuditEvent.at))
            .where(col(AuditEvent.at) >= start, col(AuditEvent.actor).in_(list(users)))
            .group_by(col(AuditEvent.actor))
        )
    }
    events = session.exec(
        select(AuditEvent)
        .where(
            col(AuditEvent.at) >= start,
            col(AuditEvent.action).in_(["login", "logout", "reveal_contact", "outcome"]),
        )
        .order_by(col(AuditEvent.id))
    ).all()
    connected: dict[str, bool] = {}
    revealed: dict[str, datetime] = {}
    handling: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.actor not in users:
            continue
        if e.action in ("login", "logout"):
            connected[e.actor] = e.action == "login"
        elif e.action == "reveal_contact":
            revealed[f"action/{e.detail.get('action')}"] = e.at
        elif e.action == "outcome" and e.target in revealed:
            handling[e.actor].append((e.at - revealed.pop(e.target)).total_seconds())
    figures = _adviser_calls(session, paris_today(now))
    people: list[dict[str, Any]] = []
    for who in sorted(w for w, on in connected.items() if on):
        u = users[who]
        seen = max(filter(None, [u.last_seen_at, last_work.get(who)]))
        state = _state(who in in_call, now - seen, now - last_work.get(who, seen))
        f = figures.get(who, {"calls": 0, "reached": 0})
        times = handling.get(who, [])
        people.append(
            {
                "username": who,
                "name": u.display_name,
                "state": state,
                "state_label": STATE_LABELS[state],
                "last_seen": seen,
                "calls": f["calls"],
                "reached": f["reached"],
                "reach_rate": f["reached"] / f["calls"] if f["calls"] else None,
                "mean_handling_s": sum(times) / len(times) if times else None,
            }
        )
    every = [t for ts in handling.values() for t in ts]
    return {
        "advisers": {p["username"]: p["state_label"] for p in people},
        "people": people,
        "mean_handling_s": sum(every) / len(every) if every else None,
        "handled": len(every),
    }


def _state(calling: bool, unseen: timedelta, unworked: timedelta) -> str:
    if unseen > ABSENT_AFTER:
        return "absent"
    if calling:
        return "in_call"
    return "idle" if unworked > IDLE_AFTER else "available"


def alerts(*, session: Session, now: datetime, board: dict[str, Any]) -> list[str]:
    """What a supervisor should act on now, in French."""
    out: list[str] = []
    queue = board["totals"]["queue"]
    if queue:
        saved = session.exec(
            select(func.count())
            .select_from(Action)
            .where(
                Action.channel == "phone",
                Action.state == DONE,
                col(Action.updated_at) >= now - STALL_AFTER,
            )
        ).one()
        if not saved:
            minutes = int(STALL_AFTER.total_seconds() // 60)
            out.append(
                f"La file ne se vide pas : {queue} appel(s) en attente et aucun appel "
                f"enregistré depuis {minutes} minutes."
            )
    overdue = session.exec(
        select(func.count())
        .select_from(Action)
        .where(
            Action.channel == "phone",
            Action.state == QUEUED,
            col(Action.due_at).is_not(None),
            col(Action.due_at) < now - CALLBACK_GRACE,
        )
    ).one()
    if overdue:
        out.append(f"{overdue} rappel(s) en retard : l'heure promise est dépassée.")
    for p in board["people"]:
        if p["state"] == "idle":
            minutes = int(IDLE_AFTER.total_seconds() // 60)
            out.append(f"{p['name']} est inactif depuis plus de {minutes} minutes.")
        elif p["state"] == "absent":
            out.append(
                f"{p['name']} ne répond plus depuis {p['last_seen'].astimezone(PARIS):%H:%M} "
                "(page fermée ?)."
            )
    return out


def touch(*, session: Session, username: str, now: datetime) -> bool:
    """The adviser page's heartbeat: this adviser is still there."""
    u = session.exec(select(User).where(User.username == username)).first()
    if u is None:
        return False
    u.last_seen_at = now
    session.add(u)
    session.flush()
    return True
