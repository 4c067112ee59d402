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
from typing import Any

from channels.base import ChannelError, Receipt, safe_name, write_atomic
from channels.letters import Letter, check_letters


class PdfLetters:
    """Print batches rendered to PDF under `<folder>/letters/`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder) / "letters"

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
        from weasyprint import HTML

        batch = safe_name(batch_id)
        printed = self._printed()
        results: list[Receipt | ChannelError | None] = []
        pages: list[Any] = []
        rows: list[list[object]] = []
        for letter, err in zip(letters, check_letters(letters), strict=True):
            if err is not None:
                results.append(err)
            elif letter.key in printed:
                results.append(
                    Receipt(key=letter.key, provider_id=f"{printed[letter.key]}/{letter.key}")
                )
            else:
                doc = HTML(string=letter.html).render()
                rows.append([len(rows) + 1, letter.key, len(pages) + 1, len(doc.pages)])
                pages.extend(doc.pages)
                results.append(None)
        if pages:
            first = HTML(string="<p></p>").render()
            pdf = first.copy(pages).write_pdf()
            assert isinstance(pdf, bytes)
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
