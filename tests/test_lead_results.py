"""The lead's figures: one count per column, equal in every view; the period; both CSV dialects."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from campaigns.app.objectives import decode_csv, import_objectives
from campaigns.app.results import lead_results
from campaigns.ledger.accounts import create_user
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, AuditEvent, Member, Objective
from campaigns.measurement.dashboard import ObjectiveError
from campaigns.measurement.period import Period, PeriodError, parse_period
from campaigns.settings import Settings
from console.web.app import create_app
from console.web.exports import results_csv, results_xlsx
from tests.test_console import PW, login
from tests.test_dashboard import TODAY, D, build

MARCH = Period(since=date(2026, 3, 11), until=date(2026, 3, 31), preset="dates")


def _unanswered_call(engine: Engine) -> None:
    """Member 25 is called once, unanswered: called, but not contacted."""
    with session_scope(engine) as s:
        m = s.exec(select(Member).order_by(col(Member.id)).offset(25)).first()
        assert m is not None
        s.add(
            Action(
                key="t:25:phone",
                campaign_id=D.id,
                member_id=m.id,
                person_id=m.person_id,
                step="call",
                channel="phone",
                attempt=1,
                due_on=date(2026, 3, 12),
                done_on=date(2026, 3, 12),
                state="done",
                outcome="no_answer",
                created_at=datetime(2026, 3, 2, tzinfo=UTC),
                updated_at=datetime(2026, 3, 2, tzinfo=UTC),
            )
        )


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))


def test_contacted_is_one_count_in_every_view(engine: Engine) -> None:
    build(engine)
    _unanswered_call(engine)
    with session_scope(engine) as s:
        res = lead_results(
            session=s, actor="reg", campaign_id=D.id, period=Period(since=None, until=TODAY)
        )
    r91 = next(r for r in res.rows if r.echelon == "91")
    # The unanswered call makes 11 called, but only reached calls and played messages contact:
    # 10 calls reached + 10 mailbox messages + 5 letters (this is what split 397 from 511).
    assert (r91.called, r91.reached, r91.contacted) == (11, 10, 25)
    funnel = dict(res.funnel)
    assert funnel["contactés"] == res.total.contacted == 25
    table = _csv_rows(results_csv(res))
    at = table[0].index("contactés")
    assert table[-1][0] == "total" and table[-1][at] == "25"
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(results_xlsx(res)))
    sheet = [[c.value for c in row] for row in wb["Résultats par échelon"].iter_rows()]
    assert sheet[-1][sheet[0].index("contactés")] == 25
    assert dict(row for row in wb["Entonnoir"].iter_rows(values_only=True))["contactés"] == 25  # type: ignore[arg-type]
    assert "appel abouti" in res.definitions["contactés"]


def test_the_period_bounds_every_count(engine: Engine) -> None:
    build(engine)
    with session_scope(engine) as s:
        march = lead_results(session=s, actor="reg", campaign_id=D.id, period=MARCH)
        later = lead_results(
            session=s,
            actor="reg",
            campaign_id=D.id,
            period=Period(since=date(2026, 4, 1), until=TODAY, preset="dates"),
        )
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "view_results")).all()
    r = next(x for x in march.rows if x.echelon == "91")
    # 11–31 March: the calls of 10 March are out; messages (12th) and letters (20th) in.
    assert (r.called, r.mailbox, r.letters, r.contacted) == (0, 10, 5, 15)
    assert r.enrolled == 7  # 3 on 15, 1 (holdout) on 18, 2 on 20, 1 on 25 March; not 30 June
    assert march.series[-1] == (date(2026, 3, 25), 7)
    assert march.effects[-1].uplift.holdout_enrolled == 1
    r = next(x for x in later.rows if x.echelon == "91")
    assert (r.contacted, r.enrolled, later.series) == (0, 0, [])
    assert len(events) == 2  # every view of the figures is audited


@pytest.mark.parametrize(
    ("preset", "du", "au", "error"),
    [
        ("trimestre", None, None, "« période » : 'trimestre' inconnue"),
        ("dates", "31/02/2026", None, "« du » : '31/02/2026' n'est pas une date"),
        ("dates", "2026-04-10", "2026-04-01", "« du » : le 10/04/2026 est après le 01/04/2026"),
        ("dates", None, "2026-05-01", "« au » : le 01/05/2026 est dans le futur"),
    ],
)
def test_a_bad_period_is_refused_in_french(
    preset: str, du: str | None, au: str | None, error: str
) -> None:
    with pytest.raises(PeriodError) as e:
        parse_period(preset=preset, since=du, until=au, today=TODAY)
    assert str(e.value).startswith(error)


def test_the_presets_and_french_dates() -> None:
    assert parse_period(preset="semaine", since=None, until=None, today=TODAY).since == date(
        2026, 4, 24
    )
    assert parse_period(preset=None, since=None, until=None, today=TODAY).since is None
    p = parse_period(preset=None, since="01/03/2026", until="2026-03-31", today=TODAY)
    assert (p.since, p.until, p.preset) == (date(2026, 3, 1), date(2026, 3, 31), "dates")
    assert p.query() == "periode=dates&du=2026-03-01&au=2026-03-31"
    assert p.label() == "du 01/03/2026 au 31/03/2026"


EXCEL = "\ufeffechelon;objective\r\n91;1 200\r\n75;30,0\r\n".encode()


def test_the_objectives_import_reads_both_dialects(engine: Engine) -> None:
    build(engine)
    with session_scope(engine) as s:
        n = import_objectives(
            session=s, actor="mgr", campaign_id=D.id, text=decode_csv(EXCEL), filename="x.csv"
        )
        assert n == 2
        n = import_objectives(
            session=s,
            actor="mgr",
            campaign_id=D.id,
            text="echelon,objective\n93,7\n",
            filename=None,
        )
        assert n == 1
    with session_scope(engine) as s:
        latest = {
            o.echelon: o.target
            for o in s.exec(select(Objective).order_by(col(Objective.id)))
            if o.set_by == "mgr"
        }
    assert latest == {"91": 1200, "75": 30, "93": 7}
    # French Excel's older "CSV (séparateur : point-virgule)" is Windows-1252.
    assert decode_csv("échelon;objectif\r\n".encode("cp1252")).startswith("échelon;objectif")


def test_a_bad_excel_file_names_row_and_column_and_changes_nothing(engine: Engine) -> None:
    build(engine)
    with session_scope(engine) as s:
        before = len(s.exec(select(Objective)).all())
    bad = "\ufeffechelon;objective\r\n91;12\r\n75;12,5\r\n99;3\r\n93;4;x\r\n"
    with pytest.raises(ObjectiveError) as e, session_scope(engine) as s:
        import_objectives(session=s, actor="mgr", campaign_id=D.id, text=bad, filename="b.csv")
    assert str(e.value) == (
        "ligne 3, colonne objective : n'est pas un nombre entier positif; "
        "ligne 4, colonne echelon : échelon inconnu; "
        "ligne 5 : 2 colonnes attendues, 3 trouvée(s)"
    )
    with session_scope(engine) as s:
        assert len(s.exec(select(Objective)).all()) == before


@pytest.fixture
def reg_client(engine: Engine, tmp_path: Path) -> TestClient:
    build(engine)
    with session_scope(engine) as s:
        create_user(session=s, username="reg", password=PW, role="regional_lead")
        create_user(session=s, username="mgr", password=PW, role="campaign_manager")
    app = create_app(Settings(data_dir=tmp_path, secret_key="r" * 40), engine=engine)
    app.state.clock = lambda: datetime(2026, 4, 30, 12, 0, tzinfo=UTC)
    client = TestClient(app)
    login(client, "reg")
    return client


def test_the_period_is_in_the_url_and_in_the_exports(reg_client: TestClient) -> None:
    q = "periode=dates&du=2026-03-11&au=2026-03-31"
    page = reg_client.get(f"/campaigns/sophia-ald8/results?{q}")
    assert page.status_code == 200 and "du 11/03/2026 au 31/03/2026" in page.text
    assert f"results.csv?{q.replace('&', '&amp;')}" in page.text
    assert "ce que compte chaque colonne" in page.text.lower()
    r = reg_client.get(f"/campaigns/sophia-ald8/results.csv?{q}")
    assert "2026-03-11-2026-03-31.csv" in r.headers["content-disposition"]
    rows = _csv_rows(r.content)
    assert rows[0][:3] == ["échelon", "nom", "éligibles"]
    r91 = next(x for x in rows if x[0] == "91")
    assert r91[rows[0].index("contactés")] == "15" and "," in r91[-1]  # a decimal comma
    r = reg_client.get(f"/campaigns/sophia-ald8/results.xlsx?{q}")
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == [
        "Résultats par échelon",
        "Entonnoir",
        "Effet de la campagne",
        "Historique des objectifs",
        "Définitions",
    ]
    ws = wb["Résultats par échelon"]
    assert ws.freeze_panes == "A2" and ws["A1"].font.b
    header = [c.value for c in ws[1]]
    row = next(r for r in ws.iter_rows(min_row=2) if r[0].value == "91")
    assert row[header.index("éligibles")].number_format == "#,##0"
    assert row[header.index("atteinte %")].number_format == '0.0" %"'
    assert (ws.column_dimensions["A"].width or 0) >= 10
    assert wb["Historique des objectifs"]["A2"].number_format == "DD/MM/YYYY"
    assert wb["Définitions"]["A2"].value == "échelon"


def test_a_bad_period_says_why_in_french(reg_client: TestClient) -> None:
    page = reg_client.get("/campaigns/sophia-ald8/results?periode=dates&du=hier")
    assert page.status_code == 400
    assert "« du » : &#39;hier&#39; n&#39;est pas une date" in page.text
    assert "toute la campagne" in page.text
    r = reg_client.get("/campaigns/sophia-ald8/results.csv?periode=annee")
    assert r.status_code == 400 and "inconnue" in r.text


def test_an_echelon_lead_reads_only_their_echelons_objectives(engine: Engine) -> None:
    """The objectives' history on a lead's results page: their échelon's, nobody else's."""
    build(engine)
    whole = Period(since=None, until=TODAY)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with session_scope(engine) as s:
        for e in ("91", "93"):
            s.add(Objective(campaign_id=D.id, echelon=e, target=7, set_by="reg", set_at=at))
        s.flush()
        region = lead_results(session=s, actor="reg", campaign_id=D.id, period=whole)
        own = lead_results(session=s, actor="l", campaign_id=D.id, period=whole, echelon="93")
    assert {"91", "93"} <= {o.echelon for o in region.history}
    assert own.history and {o.echelon for o in own.history} == {"93"}
    assert own.total.echelon == "93"
