"""PostgreSQL: an action refers to its member by (member, campaign, person), one foreign key
instead of three

Each planned action checked three foreign keys (campaign, member, person): on a launch day that
was ~15 µs of the ~33 µs each action row costs. The campaign and the person are the member's
own, so one composite key to member(id, campaign_id, person_id) checks all three in one index
lookup, and also makes the columns copied onto the action agree with its member. SQLite cannot
alter a foreign key without rebuilding the table: it keeps its three keys, and a trigger makes
the same promise there (campaign and person those of the member).

Revision ID: 0016_member_ref
Revises: 0015_partial
Create Date: 2026-12-04 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_member_ref"
down_revision: str | None = "0015_partial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SINGLE = {"campaign_id": "campaign", "member_id": "member", "person_id": "person"}


def _single_keys() -> dict[str, str]:
    """The names PostgreSQL gave the three keys (the first migration left them unnamed)."""
    rows = op.get_bind().exec_driver_sql(
        "SELECT a.attname, c.conname FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " WHERE c.conrelid = 'action'::regclass AND c.contype = 'f'"
        " AND array_length(c.conkey, 1) = 1"
    )
    return {column: name for column, name in rows if column in _SINGLE}


_SQLITE_CHECK = """
CREATE TRIGGER action_member_reference_{verb} BEFORE {event} ON action
WHEN NOT EXISTS (
    SELECT 1 FROM member WHERE member.id = NEW.member_id
    AND member.campaign_id = NEW.campaign_id AND member.person_id = NEW.person_id
)
BEGIN
    SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: action (member_id, campaign_id,
person_id) is not a member');
END
"""
_SQLITE_EVENTS = {"insert": "INSERT", "update": "UPDATE OF member_id, campaign_id, person_id"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb, event in _SQLITE_EVENTS.items():
            op.execute(_SQLITE_CHECK.format(verb=verb, event=event))
        return
    op.create_unique_constraint("uq_member_reference", "member", ["id", "campaign_id", "person_id"])
    # NOT VALID then VALIDATE: existing rows are checked without blocking writes meanwhile.
    op.execute(
        "ALTER TABLE action ADD CONSTRAINT fk_action_member_reference"
        " FOREIGN KEY (member_id, campaign_id, person_id)"
        " REFERENCES member (id, campaign_id, person_id) NOT VALID"
    )
    op.execute("ALTER TABLE action VALIDATE CONSTRAINT fk_action_member_reference")
    for name in _single_keys().values():
        op.drop_constraint(name, "action", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in _SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER action_member_reference_{verb}")
        return
    for column, table in _SINGLE.items():
        op.create_foreign_key(f"action_{column}_fkey", "action", table, [column], ["id"])
    op.drop_constraint("fk_action_member_reference", "action", type_="foreignkey")
    op.drop_constraint("uq_member_reference", "member", type_="unique")
