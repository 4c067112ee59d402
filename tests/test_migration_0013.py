"""Migration 0013 keeps the files of the versions already recorded (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from campaigns.definition.catalog import load_campaign
from campaigns.definition.files import folder_files
from campaigns.ledger.db import make_engine
from campaigns.ledger.registry import definition_sha256
from tests.test_encryption import _migrate, empty_url

__all__ = ["empty_url"]  # the fixture, shared with the encryption migration's test


def test_recorded_versions_get_the_files_of_the_folder_with_their_fingerprint(
    empty_url: str,
) -> None:
    sophia = load_campaign("sophia-ald8")
    engine = make_engine(empty_url)
    try:
        _migrate(engine, "0012")
        now = datetime(2026, 10, 1, 8, tzinfo=UTC)
        with engine.begin() as c:
            for cid, sha in (
                ("sophia-ald8", definition_sha256(sophia.definition)),
                ("ancienne", "0" * 64),  # a folder that changed since: its files are lost
            ):
                c.execute(
                    text(
                        "INSERT INTO campaign (id, name, definition_sha256, registered_at) "
                        "VALUES (:id, :id, :sha, :now)"
                    ),
                    {"id": cid, "sha": sha, "now": now},
                )
                c.execute(
                    text(
                        "INSERT INTO campaignversion "
                        "(campaign_id, version, definition_sha256, effective_on, recorded_at) "
                        "VALUES (:id, 1, :sha, :day, :now)"
                    ),
                    {"id": cid, "sha": sha, "day": now.date(), "now": now},
                )
        _migrate(engine, "0013_cm16pages")
        with engine.connect() as c:
            rows = c.execute(
                text("SELECT campaign_id, version, path, text, saved_by FROM definitionfile")
            ).all()
        kept = {r.path: r.text for r in rows if r.campaign_id == "sophia-ald8"}
        assert kept == folder_files(sophia.folder)
        assert {(r.campaign_id, r.version, r.saved_by) for r in rows} == {
            ("sophia-ald8", 1, "migration")
        }
        _migrate(engine, "0012", down=True)
        tables = inspect(engine).get_table_names()
        assert "campaignversion" in tables and "definitionfile" not in tables
    finally:
        engine.dispose()
