"""Letters as the print house wants them: one PDF per batch (WeasyPrint) and a manifest.

The manifest (CSV) lists, in print order, each letter's sequence, key, first page, page
count, and the SHA-256 of the batch PDF. A key already printed in an earlier batch is not
printed again (its receipt points at that batch); a bad address is reported, not printed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from channels.base import ChannelError, Receipt, safe_name, write_atomic
from channels.letters import Letter, check_letters

CHUNK = 25  # letters per rendered PDF: fonts embedded once per chunk, not once per letter


def render_chunk(htmls: Sequence[str]) -> tuple[bytes, list[int]]:
    """Several letters as one PDF, with each letter's page count (runs in a worker process)."""
    from weasyprint import HTML

    docs = [HTML(string=h).render() for h in htmls]
    pdf = docs[0].copy([p for d in docs for p in d.pages]).write_pdf()
    assert isinstance(pdf, bytes)
    return pdf, [len(d.pages) for d in docs]


class PdfLetters:
    """Print batches rendered to PDF under `<folder>/letters/`, on `workers` processes."""

    def __init__(self, folder: Path, workers: int = 1) -> None:
        self.folder, self.workers = Path(folder) / "letters", max(1, workers)
        self._pool: Any = None

    def close(self) -> None:
        """Stop the worker processes (they are started again if another batch comes)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _map(self, chunks: list[list[str]]) -> list[tuple[bytes, list[int]]]:
        """Render the chunks, on the worker processes (started once, kept for later batches)."""
        if self.workers == 1 or len(chunks) == 1:
            return [render_chunk(c) for c in chunks]
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.workers)
            weakref.finalize(self, self._pool.shutdown)
        return list(self._pool.map(render_chunk, chunks))

    def printed(self) -> dict[str, str]:
        """Keys already printed, with their batch."""
        out: dict[str, str] = {}
        for manifest in self.folder.glob("*.manifest.csv"):
            with manifest.open() as f:
                for row in csv.DictReader(f):
                    out[row["key"]] = manifest.name.removesuffix(".manifest.csv")
        return out

    def print_batch(self, batch_id: str, letters: Sequence[Letter]) -> list[Receipt | ChannelError]:
        """Render the batch's new letters into one PDF and write its manifest, atomically."""
        from pypdf import PdfReader, PdfWriter

        batch = safe_name(batch_id)
        printed = self.printed()
        results: list[Receipt | ChannelError | None] = []
        todo: list[Letter] = []
        for letter, err in zip(letters, check_letters(letters), strict=True):
            if err is not None:
                results.append(err)
            elif letter.key in printed:
                receipt = Receipt(key=letter.key, provider_id=f"{printed[letter.key]}/{letter.key}")
                results.append(receipt)
            else:
                todo.append(letter)
                results.append(None)
        if todo:
            # Chunks small enough to keep both workers busy to the end of the batch.
            size = max(1, min(CHUNK, -(-len(todo) // (self.workers * 4))))
            chunks = [[x.body() for x in todo[i : i + size]] for i in range(0, len(todo), size)]
            writer = PdfWriter()
            rows: list[list[object]] = []
            page = 1
            letters_left = iter(todo)
            for pdf_chunk, pages in self._map(chunks):
                for n in pages:
                    rows.append([len(rows) + 1, next(letters_left).key, page, n])
                    page += n
                writer.append(PdfReader(io.BytesIO(pdf_chunk)))
            out = io.BytesIO()
            writer.write(out)
            pdf = out.getvalue()
            digest = hashlib.sha256(pdf).hexdigest()
            write_atomic(self.folder / f"{batch}.pdf", pdf)
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["sequence", "key", "first_page", "pages", "pdf_sha256"])
            for r in rows:
                w.writerow([*r, digest])
            # The manifest last: a batch without one was not handed over, and is redone.
            write_atomic(self.folder / f"{batch}.manifest.csv", buf.getvalue().encode())
        return [
            res if res is not None else Receipt(key=x.key, provider_id=f"{batch}/{x.key}")
            for x, res in zip(letters, results, strict=True)
        ]
