"""The console serves the State's design system (DSFR) from tools/ui, and starts without it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from campaigns.ledger.db import make_engine, upgrade
from campaigns.settings import Settings
from console.web import app as web

INSTALLED = pytest.mark.skipif(not web.DSFR.is_dir(), reason="scripts/setup.sh not run (npm)")


def _client(tmp_path: Path) -> TestClient:
    engine = make_engine(f"sqlite:///{tmp_path / 'relance.db'}")
    upgrade(engine)
    return TestClient(
        web.create_app(Settings(data_dir=tmp_path, secret_key="d" * 40), engine=engine)
    )


@INSTALLED
def test_dsfr_is_served_and_linked_under_a_strict_csp(tmp_path: Path) -> None:
    client = _client(tmp_path)
    css = client.get("/static/dsfr/dsfr.min.css")
    assert css.status_code == 200 and "fr-btn" in css.text
    assert client.get("/static/dsfr/dsfr.module.min.js").status_code == 200
    assert client.get("/static/dsfr/fonts/Marianne-Regular.woff2").status_code == 200
    assert client.get("/static/call.js").status_code == 200  # the console's own files still
    page = client.get("/login")
    assert 'href="/static/dsfr/dsfr.min.css"' in page.text
    nonce = page.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert (
        f'<script type="module" src="/static/dsfr/dsfr.module.min.js" nonce="{nonce}"' in page.text
    )
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'nonce-" in policy and "unsafe-inline' " not in policy.split(";")[1]
    assert "img-src 'self' data:" in policy


def test_without_dsfr_the_console_starts_plain_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(web, "DSFR", tmp_path / "absent")
    with caplog.at_level(logging.WARNING, logger="console.web.app"):
        client = _client(tmp_path)
    assert "DSFR absent" in caplog.text
    page = client.get("/login")
    assert page.status_code == 200 and "/static/dsfr/" not in page.text
    assert client.get("/static/dsfr/dsfr.min.css").status_code == 404
