"""Private folders on disk, for every part of the project (the lowest layer: it imports nothing of
the project, and targeting/ and channels/, which may import nothing else, share it).

Files that may hold personal data are 0600 in folders 0700; `private_dir` makes the folders.
"""

from __future__ import annotations

from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """The folder, with the missing ones up to it created readable by their owner only (0700)."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=DIR_MODE, exist_ok=True)
        # mkdir's mode goes through the umask; set it explicitly before anything is put inside.
        d.chmod(DIR_MODE)
    return path
