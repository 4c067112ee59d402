"""Letters as the print house wants them: one PDF per batch (WeasyPrint) and a manifest.

The manifest (CSV) lists, in print order, each letter's sequence, key, first page, page
count, and the SHA-256 of the batch PDF. A key already printed in an earlier batch is not
printed again (its receipt points at that batch); a bad address is reported, not printed.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

from channels.base import ChannelError, Receipt, safe_name, write_atomic
from channels.letters import Letter, check_letters


def render_pdf(html: str) -> bytes:
    """One letter as PDF bytes (runs in a worker process when there are several)."""
    from weasyprint import HTML

    pdf = HTML(string=html).write_pdf()
    assert isinstance(pdf, bytes)
    return pdf


class PdfLetters:
    """Print batches rendered to PDF under `<folder>/letters/`, on `workers` processes."""

    def __init__(self, folder: Path, workers: int = 1) -> None:
        self.folder, self.workers = Path(folder) / "letters", max(1, workers)

    def _printed(self) -> dict[str, str]:
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
        printed = self._printed()
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
            htmls = [x.html for x in todo]
            if self.workers > 1 and len(todo) > 1:
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(self.workers) as pool:
                    pdfs = list(pool.map(render_pdf, htmls, chunksize=8))
            else:
                pdfs = [render_pdf(h) for h in htmls]
            writer = PdfWriter()
            rows: list[list[object]] = []
            page = 1
            for letter, one in zip(todo, pdfs, strict=True):
                reader = PdfReader(io.BytesIO(one))
                rows.append([len(rows) + 1, letter.key, page, len(reader.pages)])
                page += len(reader.pages)
                writer.append(reader)
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
