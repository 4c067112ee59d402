"""Mass letters handed to the print house as data: per batch one JSON Lines file and its manifest.

A batch is a folder `<outbox>/letters/files/<batch>/` holding `<batch>.jsonl` (one record per
letter: key, template and its version and SHA-256, the AFNOR address lines, the merge
fields), `<batch>.manifest.json` and a few sample PDFs rendered from the same letters. The
folder is written under a hidden temporary name and renamed whole: the print house never
sees a batch half written. A key already in a batch is never written again. Batches smaller
than `pdf_below` go to the PDF printer instead (small volumes are printed as PDF).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from channels.afnor import AddressError, validate_address
from channels.base import ChannelError, PermanentFailure, Receipt, safe_name
from channels.letters import Letter
from channels.pdf_letters import render_chunk
from relance_fs import FILE_MODE, private_dir

PARIS = ZoneInfo("Europe/Paris")
FORMAT = "jsonl-utf8/1"
# Hidden folders left by a writer killed mid-batch are removed once this old (another
# process may be writing a younger one right now).
ABANDONED_AFTER_S = 3600.0
_WRITE_EVERY = 5000  # records joined per write: few system calls, bounded memory


class PdfPrinter(Protocol):
    """The PDF printer small batches go to (channels.pdf_letters.PdfLetters)."""

    def print_batch(self, batch_id: str, letters: Sequence[Letter]) -> list[Receipt | ChannelError]:
        """Print a batch as PDF."""
        ...

    def printed(self) -> dict[str, str]:
        """Keys it already printed, with their batch."""
        ...


def _render_pdf(html: str) -> bytes:
    """One letter as a PDF, with the PDF printer's renderer."""
    return render_chunk([html])[0]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PrintFileLetters:
    """The print house's data files (the letter port's `print_batch`), PDF for small batches."""

    def __init__(
        self,
        folder: Path,
        *,
        samples: int = 3,
        pdf: PdfPrinter | None = None,
        pdf_below: int = 0,
        render_pdf: Callable[[str], bytes] = _render_pdf,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.folder = Path(folder) / "letters" / "files"
        self.samples, self.pdf, self.pdf_below = max(0, samples), pdf, pdf_below
        self._render_pdf = render_pdf
        self._now = now or (lambda: datetime.now(PARIS))
        self._keys: dict[str, str] = {}  # key -> batch folder it is in
        self._seen: set[str] = set()  # batch folders already read into _keys

    def printed(self) -> dict[str, str]:
        """Keys already in a handed-over batch (read once per batch folder), with the batch."""
        if not self.folder.is_dir():
            return self._keys
        for entry in os.scandir(self.folder):
            if entry.name.startswith("."):
                self._clean_abandoned(entry)
            elif entry.name not in self._seen and entry.is_dir():
                data = Path(entry.path) / f"{entry.name}.jsonl"
                with data.open(encoding="utf-8") as f:
                    for line in f:
                        self._keys[json.loads(line)["key"]] = entry.name
                self._seen.add(entry.name)
        return self._keys

    def _clean_abandoned(self, entry: os.DirEntry[str]) -> None:
        try:
            if time.time() - entry.stat().st_mtime > ABANDONED_AFTER_S:
                shutil.rmtree(entry.path, ignore_errors=True)
        except FileNotFoundError:
            pass

    def print_batch(self, batch_id: str, letters: Sequence[Letter]) -> list[Receipt | ChannelError]:
        """Write the new letters as one data file + manifest (PDF if few); a result per letter."""
        mine = self.printed()
        # A key printed as PDF (a small batch, before a crash) is not written again either.
        as_pdf = self.pdf.printed() if self.pdf is not None else {}
        results: list[Receipt | ChannelError | None] = []
        todo: list[tuple[Letter, list[str]]] = []
        in_batch: set[str] = set()
        for x in letters:
            try:
                address = validate_address(x.address_lines)
            except AddressError as e:
                results.append(PermanentFailure(str(e), key=x.key, code="invalid_address"))
                continue
            where = mine.get(x.key) or as_pdf.get(x.key)
            if where is not None:
                results.append(Receipt(key=x.key, provider_id=f"{where}/{x.key}"))
                continue
            results.append(None)
            if x.key not in in_batch:  # the same key twice in one batch: one record
                in_batch.add(x.key)
                todo.append((x, address))
        if not todo:
            return [r for r in results if r is not None]
        if self.pdf is not None and len(todo) < self.pdf_below:
            printed = self.pdf.print_batch(batch_id, [x for x, _ in todo])
            by_key: dict[str, Receipt | ChannelError] = {
                x.key: r for (x, _), r in zip(todo, printed, strict=True)
            }
        else:
            name = self._write(batch_id, todo)
            by_key = {x.key: Receipt(key=x.key, provider_id=f"{name}/{x.key}") for x, _ in todo}
        return [
            r if r is not None else by_key[x.key] for x, r in zip(letters, results, strict=True)
        ]

    def _write(self, batch_id: str, todo: list[tuple[Letter, list[str]]]) -> str:
        """Write the batch folder under a hidden name, then rename it whole; its final name."""
        private_dir(self.folder)
        name = self._free_name(safe_name(batch_id))
        tmp = self.folder / f".tmp-{name}-{uuid.uuid4().hex[:12]}"
        private_dir(tmp)
        try:
            digest, templates = self._write_data(tmp / f"{name}.jsonl", todo)
            samples = self._write_samples(tmp, name, [x for x, _ in todo])
            manifest = {
                "batch": name,
                "format": FORMAT,
                "campaigns": sorted({x.campaign for x, _ in todo if x.campaign}),
                "count": len(todo),
                "data_file": f"{name}.jsonl",
                "data_sha256": digest,
                "templates": templates,
                "created_at": self._now().astimezone(PARIS).isoformat(timespec="seconds"),
                "samples": samples,
            }
            self._write_file(
                tmp / f"{name}.manifest.json",
                (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode(),
            )
            _fsync_dir(tmp)
            if (self.folder / name).exists():
                raise FileExistsError(f"lot {name} déjà remis à l'imprimeur")
            # One rename: the whole batch (data, manifest, samples) appears at once or not at all.
            os.rename(tmp, self.folder / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.folder)
        for x, _ in todo:
            self._keys[x.key] = name
        self._seen.add(name)
        return name

    def _free_name(self, base: str) -> str:
        """The batch's folder name: its id, or `<id>.2`, `.3`… when a batch already has it."""
        n = 1
        while (self.folder / (base if n == 1 else f"{base}.{n}")).exists():
            n += 1
        return base if n == 1 else f"{base}.{n}"

    @staticmethod
    def _write_file(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    @staticmethod
    def _write_data(
        path: Path, todo: list[tuple[Letter, list[str]]]
    ) -> tuple[str, list[dict[str, Any]]]:
        """The records, one JSON object a line; the file's SHA-256 and the templates used."""
        h = hashlib.sha256()
        templates: dict[tuple[str, str, str], int] = {}
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            lines: list[str] = []
            for seq, (x, address) in enumerate(todo, start=1):
                t = (x.template, x.template_version, x.template_sha256)
                templates[t] = templates.get(t, 0) + 1
                record = {
                    "key": x.key,
                    "sequence": seq,
                    "template": x.template,
                    "template_version": x.template_version,
                    "template_sha256": x.template_sha256,
                    "address": address,
                    "fields": x.fields,
                }
                lines.append(dumps(record))
                if len(lines) == _WRITE_EVERY:
                    chunk = ("\n".join(lines) + "\n").encode()
                    h.update(chunk)
                    f.write(chunk)
                    lines.clear()
            if lines:
                chunk = ("\n".join(lines) + "\n").encode()
                h.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        used = [
            {"template": t, "version": v, "sha256": s, "letters": n}
            for (t, v, s), n in sorted(templates.items())
        ]
        return h.hexdigest(), used

    def _write_samples(self, folder: Path, base: str, letters: list[Letter]) -> list[str]:
        """A few letters of the batch as PDF, spread over it, for the print house to check."""
        n = min(self.samples, len(letters))
        if n == 0:
            return []
        picks = sorted({round(i * (len(letters) - 1) / max(1, n - 1)) for i in range(n)})
        names = []
        for i in picks:
            name = f"{base}.sample-{i + 1:06d}.pdf"
            self._write_file(folder / name, self._render_pdf(letters[i].body()))
            names.append(name)
        return names
