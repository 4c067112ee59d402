"""The letter port: print a batch of letters for the print house."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from channels.afnor import AddressError, validate_address
from channels.base import ChannelError, PermanentFailure, Receipt, safe_name, write_atomic


@dataclass(frozen=True)
class Letter:
    """One letter: the address block, its HTML body (or how to render it) and its merge data.

    A print-house data file carries the template and the merge fields instead of the body:
    `render` lets the body be rendered only for the letters that are printed as PDF.
    """

    key: str
    address_lines: tuple[str, ...]
    html: str = ""
    campaign: str = ""
    template: str = ""
    template_version: str = ""
    template_sha256: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    render: Callable[[], str] | None = field(default=None, compare=False, repr=False)

    def body(self) -> str:
        """The letter's HTML, rendered now if it was not given."""
        if not self.html and self.render is not None:
            return self.render()
        return self.html


class LetterPrinter(Protocol):
    """A print house."""

    def print_batch(self, batch_id: str, letters: Sequence[Letter]) -> list[Receipt | ChannelError]:
        """Print a batch; the result list lines up with `letters`."""
        ...


def check_letters(letters: Sequence[Letter]) -> list[ChannelError | None]:
    """An `invalid_address` failure for each letter that cannot be put in a window envelope."""
    out: list[ChannelError | None] = []
    for x in letters:
        try:
            validate_address(x.address_lines)
            out.append(None)
        except AddressError as e:
            out.append(PermanentFailure(str(e), key=x.key, code="invalid_address"))
    return out


class LocalLetters:
    """The embedded sink: one HTML file per letter and a manifest per batch."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder) / "letters"

    def print_batch(self, batch_id: str, letters: Sequence[Letter]) -> list[Receipt | ChannelError]:
        """Write the batch's letters (each key once) and its manifest; bad addresses are not."""
        batch = self.folder / safe_name(batch_id)
        out: list[Receipt | ChannelError] = []
        manifest = io.StringIO()
        w = csv.writer(manifest, lineterminator="\n")
        w.writerow(["sequence", "key", "file", "sha256"])
        seq = 0
        # Letters already printed, by file name: one listing per batch, not one per letter.
        printed = {p.name: p for p in self.folder.glob("*/*.html")}
        for letter, err in zip(letters, check_letters(letters), strict=True):
            if err is not None:
                out.append(err)
                continue
            seq += 1
            name = f"{safe_name(letter.key)}.html"
            existing = printed.get(name)
            path = existing or batch / name
            if existing is None:
                write_atomic(path, letter.body().encode())
                printed[name] = path
            w.writerow([seq, letter.key, path.name, hashlib.sha256(path.read_bytes()).hexdigest()])
            out.append(Receipt(key=letter.key, provider_id=f"{path.parent.name}/{path.stem}"))
        if seq:
            write_atomic(batch / "manifest.csv", manifest.getvalue().encode())
        return out


@dataclass
class FakeLetters:
    """An in-memory printer for tests."""

    printed: dict[str, Letter] = field(default_factory=dict)
    batches: list[str] = field(default_factory=list)

    def print_batch(self, batch_id: str, letters: Sequence[Letter]) -> list[Receipt | ChannelError]:
        """Record each valid letter once per key."""
        self.batches.append(batch_id)
        out: list[Receipt | ChannelError] = []
        for letter, err in zip(letters, check_letters(letters), strict=True):
            if err is not None:
                out.append(err)
                continue
            self.printed.setdefault(letter.key, letter)
            out.append(Receipt(key=letter.key, provider_id=f"{batch_id}/{letter.key}"))
        return out
