"""Letters printed as one PDF per batch with a manifest; a bad address is reported, not printed."""

from __future__ import annotations

import csv
import hashlib
from datetime import date
from pathlib import Path

from pypdf import PdfReader

from campaigns.definition.catalog import load_campaign
from campaigns.definition.rendering import build_context, render_message
from channels.base import PermanentFailure, Receipt
from channels.letters import Letter
from channels.pdf_letters import PdfLetters

C = load_campaign("sophia-ald8")
GOOD = ("MADAME ANNE MARTIN", "3 RUE DES ECOLES", "93000 BOBIGNY")


def letter(key: str, address: tuple[str, ...] = GOOD) -> Letter:
    ctx = build_context(
        definition=C.definition,
        person={
            "civilite": "Mme",
            "nom": "MARTIN",
            "prenom": "Anne",
            "age": 64,
            "address_lines": list(address),
            "departement": "93",
        },
        member={
            "anchor_date": date(2026, 6, 15),
            "priority": True,
            "gaps": ["gap_renal"],
            "echelon": "93",
            "channels_tried": ["phone"],
        },
        step_id="letter",
        attempt=1,
        today=date(2026, 6, 15),
    )
    _, html = render_message(C.env, "letter.html.j2", ctx)
    return Letter(key=key, address_lines=address, html=html)


def test_one_pdf_per_batch_and_its_manifest(tmp_path: Path) -> None:
    printer = PdfLetters(tmp_path)
    bad = letter("c:3:letter:1", ("M X", "Y" * 39, "93000 BOBIGNY"))
    out = printer.print_batch(
        "sophia-2026-06-15-1", [letter("c:1:letter:1"), bad, letter("c:2:letter:1")]
    )
    assert [type(r).__name__ for r in out] == ["Receipt", "PermanentFailure", "Receipt"]
    assert isinstance(out[1], PermanentFailure) and out[1].code == "invalid_address"
    pdf = tmp_path / "letters" / "sophia-2026-06-15-1.pdf"
    reader = PdfReader(pdf)
    assert len(reader.pages) == 2
    assert "MADAME ANNE MARTIN" in reader.pages[0].extract_text()
    w, h = float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)
    assert abs(w - 595.3) < 1 and abs(h - 841.9) < 1  # A4 in points
    with (tmp_path / "letters" / "sophia-2026-06-15-1.manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["sequence"], r["key"], r["first_page"], r["pages"]) for r in rows] == [
        ("1", "c:1:letter:1", "1", "1"),
        ("2", "c:2:letter:1", "2", "1"),
    ]
    assert {r["pdf_sha256"] for r in rows} == {hashlib.sha256(pdf.read_bytes()).hexdigest()}


def test_a_letter_already_printed_is_not_printed_again(tmp_path: Path) -> None:
    printer = PdfLetters(tmp_path)
    printer.print_batch("b1", [letter("c:1:letter:1")])
    again = printer.print_batch("b2", [letter("c:1:letter:1"), letter("c:9:letter:1")])
    assert isinstance(again[0], Receipt) and again[0].provider_id == "b1/c:1:letter:1"
    assert len(PdfReader(tmp_path / "letters" / "b2.pdf").pages) == 1


def test_two_processes_print_the_same_pages(tmp_path: Path) -> None:
    batch = [letter(f"c:{i}:letter:1") for i in range(4)]
    PdfLetters(tmp_path / "one").print_batch("b", batch)
    PdfLetters(tmp_path / "two", workers=2).print_batch("b", batch)
    texts = [
        [p.extract_text() for p in PdfReader(tmp_path / d / "letters" / "b.pdf").pages]
        for d in ("one", "two")
    ]
    assert len(texts[0]) == 4 and texts[0] == texts[1]
