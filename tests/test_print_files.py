"""Print-house data files: one JSON Lines file + manifest per batch, written whole, once per key."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy.engine import Engine
from sqlmodel import select

from campaigns.cascade.dispatch import Adapters, dispatch
from campaigns.ledger.db import session_scope
from campaigns.ledger.models import Action, Person
from channels.base import ChannelError, PermanentFailure, Receipt
from channels.email import LocalEmail
from channels.letters import Letter
from channels.mailbox import LocalMailbox
from channels.print_files import PARIS, PrintFileLetters
from console.demo.simulator import at
from tests.test_dispatch import ANCHOR, C, setup

GOOD = ("MADAME ANNE MARTIN", "3 RUE DES ECOLES", "93000 BOBIGNY")
HTML = "<html><body><p>MADAME ANNE MARTIN</p><p>Objet : votre vaccination</p></body></html>"
NOON = datetime(2026, 12, 3, 12, 0, tzinfo=PARIS)


def letter(i: int, address: tuple[str, ...] = GOOD) -> Letter:
    return Letter(
        key=f"grippe-2026:{i}:letter:1",
        address_lines=address,
        campaign="grippe-2026",
        template="grippe-2026/letter.html.j2",
        template_version="1",
        template_sha256="ab" * 32,
        fields={"person.nom": f"MARTIN{i}", "today": "2026-12-03"},
        html=HTML,
    )


def fake_pdf(html: str) -> bytes:
    return b"%PDF-1.7 " + html.encode()


def printer(tmp: Path, **kw: object) -> PrintFileLetters:
    return PrintFileLetters(tmp, now=lambda: NOON, render_pdf=fake_pdf, **kw)  # type: ignore[arg-type]


def batches(tmp: Path) -> list[Path]:
    return sorted((tmp / "letters" / "files").iterdir())


def records(tmp: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for d in batches(tmp)
        if not d.name.startswith(".")
        for line in (d / f"{d.name}.jsonl").read_text(encoding="utf-8").splitlines()
    ]


def letters_day(
    engine: Engine, tmp: Path, files: PrintFileLetters, batch_size: int
) -> dict[str, int]:
    """The day's letters dispatched through `files` (local mailbox and e-mail beside)."""
    adapters = Adapters(mailbox=LocalMailbox(tmp), email=LocalEmail(tmp), letters=files)
    return dispatch(
        engine=engine,
        campaign=C,
        channel="letter",
        adapters=adapters,
        today=ANCHOR,
        now=at(ANCHOR, 8),
        batch_size=batch_size,
    )


def test_a_bad_address_is_refused_alone_in_french_and_the_rest_is_written(tmp_path: Path) -> None:
    bad = letter(2, ("M X", "Y" * 39, "93000 BOBIGNY"))
    out = printer(tmp_path).print_batch("b1", [letter(1), bad, letter(3)])
    assert [type(r).__name__ for r in out] == ["Receipt", "PermanentFailure", "Receipt"]
    assert isinstance(out[1], PermanentFailure) and out[1].code == "invalid_address"
    assert "ligne 2 de 39 caractères, 38 au plus" in str(out[1]) and out[1].key == bad.key
    rows = records(tmp_path)
    assert [r["key"] for r in rows] == [letter(1).key, letter(3).key]
    assert rows[0] == {
        "key": "grippe-2026:1:letter:1",
        "sequence": 1,
        "template": "grippe-2026/letter.html.j2",
        "template_version": "1",
        "template_sha256": "ab" * 32,
        "address": list(GOOD),
        "fields": {"person.nom": "MARTIN1", "today": "2026-12-03"},
    }


def test_the_manifest_names_the_batch_and_its_checksum_matches(tmp_path: Path) -> None:
    printer(tmp_path, samples=2).print_batch(
        "grippe-2026-2026-12-03-1", [letter(i) for i in range(5)]
    )
    (folder,) = batches(tmp_path)
    m = json.loads((folder / f"{folder.name}.manifest.json").read_text(encoding="utf-8"))
    data = (folder / m["data_file"]).read_bytes()
    assert m["data_sha256"] == hashlib.sha256(data).hexdigest()
    assert (m["batch"], m["count"], m["campaigns"]) == (
        "grippe-2026-2026-12-03-1",
        5,
        ["grippe-2026"],
    )
    assert m["created_at"] == "2026-12-03T12:00:00+01:00"  # Europe/Paris, winter time
    assert m["templates"] == [
        {
            "template": "grippe-2026/letter.html.j2",
            "version": "1",
            "sha256": "ab" * 32,
            "letters": 5,
        }
    ]
    assert len(data.splitlines()) == 5 and data.decode("utf-8")
    # Samples: the first and the last letter of the batch.
    assert m["samples"] == [f"{folder.name}.sample-000001.pdf", f"{folder.name}.sample-000005.pdf"]
    assert all((folder / s).read_bytes().startswith(b"%PDF") for s in m["samples"])
    assert oct(os.stat(folder / m["data_file"]).st_mode & 0o777) == "0o600"


def test_a_rerun_of_the_same_batch_writes_no_second_record(tmp_path: Path) -> None:
    first = printer(tmp_path).print_batch("b1", [letter(1), letter(2)])
    # Same batch again, in a new process (a fresh adapter reads what was handed over), plus one
    # new letter and a key given twice.
    again = printer(tmp_path).print_batch("b1", [letter(1), letter(2), letter(3), letter(3)])
    assert [r.provider_id for r in again[:2]] == [  # type: ignore[union-attr]
        r.provider_id  # type: ignore[union-attr]
        for r in first
    ]
    keys = [r["key"] for r in records(tmp_path)]
    assert sorted(keys) == sorted({letter(i).key for i in (1, 2, 3)}) and len(keys) == 3
    assert [d.name for d in batches(tmp_path)] == ["b1", "b1.2"]
    assert isinstance(again[3], Receipt) and again[3].provider_id == f"b1.2/{letter(3).key}"
    # Nothing new at all: no new batch.
    printer(tmp_path).print_batch("b1", [letter(1), letter(3)])
    assert len(batches(tmp_path)) == 2


def test_a_crash_mid_write_leaves_no_visible_batch(tmp_path: Path) -> None:
    def broken(html: str) -> bytes:
        raise OSError("disque plein")

    p = PrintFileLetters(tmp_path, render_pdf=broken)
    with pytest.raises(OSError, match="disque plein"):
        p.print_batch("b1", [letter(1), letter(2)])
    assert batches(tmp_path) == []  # data file written, samples failed: nothing left
    out = printer(tmp_path).print_batch("b1", [letter(1), letter(2)])
    assert all(isinstance(r, Receipt) for r in out) and len(records(tmp_path)) == 2


def test_a_process_killed_mid_write_leaves_only_a_hidden_folder(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from pathlib import Path
        from channels.letters import Letter
        from channels.print_files import PrintFileLetters
        def die(html):
            os._exit(9)  # killed after the data file, before the manifest
        p = PrintFileLetters(Path({str(tmp_path)!r}), render_pdf=die)
        p.print_batch("b1", [Letter(key=f"k{{i}}", address_lines={GOOD!r}, html="x")
                             for i in range(1000)])
        """
    )
    run = subprocess.run([sys.executable, "-c", script], check=False)
    assert run.returncode == 9
    (left,) = batches(tmp_path)
    assert left.name.startswith(".tmp-") and (left / "b1.jsonl").exists()
    p = printer(tmp_path)
    assert p.printed() == {}  # nothing was handed over
    out = p.print_batch("b1", [Letter(key="k1", address_lines=GOOD, html="x")])
    assert isinstance(out[0], Receipt) and out[0].provider_id == "b1/k1"
    assert [d.name for d in batches(tmp_path) if not d.name.startswith(".")] == ["b1"]


class Pdf:
    """A PDF printer that records what it was given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.done: dict[str, str] = {}

    def print_batch(self, batch_id: str, letters: Sequence[Letter]) -> list[Receipt | ChannelError]:
        self.batches.append([x.key for x in letters])
        self.done.update({x.key: batch_id for x in letters})
        return [Receipt(key=x.key, provider_id=f"{batch_id}/{x.key}") for x in letters]

    def printed(self) -> dict[str, str]:
        return self.done


def test_a_small_batch_goes_to_pdf_and_a_key_printed_as_pdf_is_not_written(tmp_path: Path) -> None:
    pdf = Pdf()
    p = printer(tmp_path, pdf=pdf, pdf_below=3)
    p.print_batch("small", [letter(1), letter(2)])
    assert pdf.batches == [[letter(1).key, letter(2).key]] and not (tmp_path / "letters").exists()
    out = p.print_batch("mass", [letter(i) for i in range(1, 6)])
    assert [r.provider_id for r in out[:2]] == [  # type: ignore[union-attr]
        f"small/{letter(1).key}",
        f"small/{letter(2).key}",
    ]
    assert [r["key"] for r in records(tmp_path)] == [letter(i).key for i in (3, 4, 5)]


def test_sample_pdfs_are_real_letters(tmp_path: Path) -> None:
    from channels.print_files import _render_pdf

    p = PrintFileLetters(tmp_path, samples=1, render_pdf=_render_pdf)
    p.print_batch("b1", [letter(1), letter(2)])
    (folder,) = batches(tmp_path)
    (sample,) = folder.glob("*.pdf")
    assert "MADAME ANNE MARTIN" in PdfReader(sample).pages[0].extract_text()


def test_dispatch_hands_letters_over_as_data_with_their_merge_fields(
    engine: Engine, tmp_path: Path
) -> None:
    setup(engine, 6, ANCHOR, telephone=None, compte_ameli=False)
    with session_scope(engine) as s:
        p = s.exec(select(Person).order_by(Person.id)).first()  # type: ignore[arg-type]
        assert p is not None
        p.address_lines = ["M. X", "91000 Evry"]  # town not in capitals
    files = printer(tmp_path, samples=1)

    def run() -> dict[str, int]:
        return letters_day(engine, tmp_path, files, 1000)

    rep = run()
    rows = records(tmp_path)
    assert rep["failed_final"] == 1 and rep["sent"] == len(rows) >= 2 and rep["batches"] == 1
    template = C.folder / "templates" / "letter.html.j2"
    assert rows[0]["template"] == "sophia-ald8/letter.html.j2"
    assert rows[0]["template_sha256"] == hashlib.sha256(template.read_bytes()).hexdigest()
    fields = rows[0]["fields"]
    assert isinstance(fields, dict)
    assert fields["today"] == ANCHOR.isoformat() and fields["person.salutation"] in (
        "Madame",
        "Monsieur",
    )
    assert "person.address_lines" not in fields and "person.nir" not in json.dumps(rows)
    with session_scope(engine) as s:
        sent = s.exec(select(Action).where(Action.channel == "letter")).all()
        assert {a.state for a in sent} == {"sent", "failed_final"}
        bad = next(a for a in sent if a.state == "failed_final")
        assert bad.reason == "invalid_address" and "MAJUSCULES" in (bad.error or "")
    assert run() == {}  # nothing due any more; no second record
    assert len(records(tmp_path)) == len(rows)
    assert date.fromisoformat(str(fields["today"])) == ANCHOR


def test_settings_choose_the_data_files_and_their_batch_size(tmp_path: Path) -> None:
    from campaigns.settings import Settings
    from channels.letters import LocalLetters
    from channels.pdf_letters import PdfLetters
    from flows.adapters import batch_size_for, build_adapters

    files = Settings(data_dir=tmp_path, letters="files", letters_pdf_below=50)
    chosen = build_adapters(files).letters
    assert isinstance(chosen, PrintFileLetters) and isinstance(chosen.pdf, PdfLetters)
    assert chosen.pdf_below == 50
    assert batch_size_for(files, "letter") == 20000 and batch_size_for(files, "email") == 500
    default = Settings(data_dir=tmp_path)
    assert isinstance(build_adapters(default).letters, LocalLetters)
    assert batch_size_for(default, "letter") == 500
    with pytest.raises(ValueError, match="local, pdf, files"):
        build_adapters(Settings(data_dir=tmp_path, letters="fichiers"))


def test_letter_batches_are_balanced_so_no_small_last_batch(engine: Engine, tmp_path: Path) -> None:
    setup(engine, 12, ANCHOR, telephone=None, compte_ameli=False)
    with session_scope(engine) as s:
        due = len(s.exec(select(Action).where(Action.channel == "letter")).all())
    assert due >= 5
    # unbalanced: due - 1, then 1
    rep = letters_day(engine, tmp_path, printer(tmp_path, samples=0), due - 1)
    sizes = sorted(len((d / f"{d.name}.jsonl").read_text().splitlines()) for d in batches(tmp_path))
    assert rep["batches"] == 2 and sum(sizes) == due and sizes[1] - sizes[0] <= 1


class _MeetingPrinter(PrintFileLetters):
    """Each dispatcher's first data file waits until the other has claimed its own batch too,
    so that both surely print whichever process started first."""

    meet: Any = None  # a multiprocessing Barrier of the two processes

    def print_batch(self, batch_id: str, letters: Sequence[Letter]) -> list[Receipt | ChannelError]:
        if self.meet is not None:
            self.meet.wait(timeout=60)
            self.meet = None
        return super().print_batch(batch_id, letters)


def _drain(url: str, folder: str, meet: object, out: object) -> None:
    """One dispatcher process draining the day's letters (as one `channel-dispatch` run)."""
    from campaigns.ledger.db import make_engine

    engine = make_engine(url)
    files = _MeetingPrinter(Path(folder), now=lambda: NOON, render_pdf=fake_pdf, samples=0)
    files.meet = meet
    rep = letters_day(engine, Path(folder), files, 5)
    engine.dispose()
    out.put(rep.get("sent", 0))  # type: ignore[attr-defined]


def test_two_dispatcher_processes_share_the_letters_each_key_once(
    engine: Engine, tmp_path: Path
) -> None:
    """Two dispatchers in their own processes (two `channel-dispatch` runs on two workers)
    drain one day's letters into the same outbox: both print, each key is in one data file
    once, and each row points at the file that holds it."""
    import multiprocessing

    setup(engine, 40, ANCHOR, telephone=None, compte_ameli=False)
    with session_scope(engine) as s:
        due = len(s.exec(select(Action).where(Action.channel == "letter")).all())
    assert due >= 20
    ctx = multiprocessing.get_context("spawn")
    meet, out = ctx.Barrier(2), ctx.Queue()
    url = engine.url.render_as_string(hide_password=False)
    procs = [ctx.Process(target=_drain, args=(url, str(tmp_path), meet, out)) for _ in range(2)]
    for p in procs:
        p.start()
    sent = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert sent[0] > 0 and sum(sent) == due, sent
    keys = [str(r["key"]) for r in records(tmp_path)]
    assert len(keys) == len(set(keys)) == due
    with session_scope(engine) as s:
        rows = s.exec(select(Action).where(Action.channel == "letter")).all()
    assert {a.state for a in rows} == {"sent"}
    for a in rows:
        folder, key = str(a.provider_id).split("/", 1)
        assert key == a.key
        data = tmp_path / "letters" / "files" / folder / f"{folder}.jsonl"
        assert a.key in {json.loads(line)["key"] for line in data.read_text().splitlines()}
