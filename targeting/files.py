"""Files that may hold personal data: private (0600, folders 0700), whole or absent, never an input.

Every command that writes a file checks its path first (`check_output`): a folder, a missing or
read-only folder, or a path inside an input is refused with a French message saying what to do.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from relance_fs import FILE_MODE


class OutputPathError(ValueError):
    """An output path that cannot be written, or whose writing would destroy an input."""


def touch_private(path: Path) -> None:
    """An empty 0600 file if there is none, so what is written into it later stays private."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_parent(path: Path, shown: str) -> None:
    """The folder the output goes in exists and may be written."""
    parent = path.absolute().parent
    if not parent.exists():
        raise OutputPathError(
            f"{shown} : le dossier {parent} n'existe pas ; créez-le (mkdir -p {parent}) "
            "ou choisissez un dossier existant."
        )
    if not parent.is_dir():
        raise OutputPathError(
            f"{shown} : {parent} n'est pas un dossier ; choisissez un fichier dans un dossier."
        )
    # A real probe, not os.access: root passes os.access on a read-only file system.
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".relance-probe-")
    except OSError as e:
        raise OutputPathError(
            f"{shown} : le dossier {parent} n'est pas accessible en écriture ({e.strerror}) ; "
            "choisissez un dossier où vous pouvez écrire."
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output_dir(path: Path, *, option: str) -> None:
    """Refuse an output folder that holds something already or cannot be created."""
    path = Path(path)
    shown = f"{option} {path}"
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{shown} existe et n'est pas un dossier : choisissez un autre nom.")
    if path.is_dir() and any(path.iterdir()):
        raise OutputPathError(
            f"{shown} n'est pas vide : choisissez un dossier nouveau ou vide (rien n'est écrasé)."
        )
    _check_parent(path, shown)


def check_output(path: Path, *, option: str, inputs: Iterable[Path] = ()) -> None:
    """Refuse an output path that is a folder, cannot be written or would replace an input."""
    path = Path(path)
    shown = f"{option} {path}"
    if path.is_dir():
        raise OutputPathError(
            f"{shown} est un dossier : indiquez un nom de fichier "
            f"(par exemple {path / 'sortie.csv'})."
        )
    if path.exists() and not path.is_file():
        raise OutputPathError(
            f"{shown} existe et n'est pas un fichier ordinaire : choisissez un autre nom."
        )
    _check_parent(path, shown)
    target = path.resolve()
    for given in inputs:
        source = Path(given).resolve()
        if source.is_dir() and _inside(target, source):
            raise OutputPathError(
                f"{shown} est dans le dossier d'entrée {given} : l'écrire là remplacerait ou "
                "mêlerait ses fichiers ; choisissez un fichier hors de ce dossier."
            )
        if target == source:
            raise OutputPathError(
                f"{shown} est le fichier d'entrée {given} : il serait écrasé ; "
                "choisissez un autre nom."
            )


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path in the output's folder, renamed over it once the block succeeds.

    The temporary file sits in a private folder of its own: a writer that recreates the file
    (DuckDB's COPY does) cannot make it readable to others before it is complete.
    """
    path = Path(path)
    parent = path.absolute().parent
    try:
        work = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}."))
    except OSError as e:
        raise OutputPathError(
            f"{path} : impossible d'écrire dans le dossier {parent} ({e.strerror}) ; "
            "choisissez un dossier où vous pouvez écrire."
        ) from None
    tmp = work / path.name
    touch_private(tmp)
    try:
        yield tmp
        tmp.chmod(FILE_MODE)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        work.rmdir()


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole private file or nothing."""
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        f.write(data)


@contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created in the block are the owner's only (0600, 0700)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
