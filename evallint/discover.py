"""Which files a run checks: .py and .ipynb under the given paths, minus excludes.

Each real file is checked once, however often it is named (`a.py ./a.py`, a folder and
a file in it, a symlink to it). Only regular files are read: a FIFO or a device named
`x.py` would block the run, so it is skipped with a warning, as is a symlink loop.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Callable, Iterator, Optional

from .config import Settings

SUFFIXES = (".py", ".ipynb")

Warn = Callable[[str], None]


def discover(paths: list[str], settings: Settings, warn: Optional[Warn] = None) -> Iterator[str]:
    """Files in a stable order. Files named explicitly are included even when excluded,
    unless `force_exclude` is set (pre-commit names every changed file)."""
    warn = warn or (lambda message: None)
    seen: set[tuple[int, int]] = set()
    for given in paths:
        p = Path(given)
        if _is_dir(p):
            for name in _walk(p, settings, warn):
                if _first_time(name, seen, warn):
                    yield name
        else:
            if settings.force_exclude and settings.is_excluded(p):
                continue
            if _first_time(given, seen, warn):
                yield given


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:  # a symlink loop, a name too long
        return False


def _walk(top: Path, settings: Settings, warn: Warn) -> Iterator[str]:
    # Symlinked folders are not entered (os.walk's default), so a folder loop cannot
    # arise; a file that is a symlink loop is caught by `_first_time`.
    def on_error(exc: OSError) -> None:
        warn(f"cannot read the folder {exc.filename}: {exc.strerror or exc}")

    for root, dirs, files in os.walk(top, onerror=on_error):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not settings.is_excluded(root_path / d))
        for name in sorted(files):
            f = root_path / name
            if name.endswith(SUFFIXES) and not settings.is_excluded(f):
                yield str(f)


def _first_time(name: str, seen: set, warn: Warn) -> bool:
    """Whether `name` is a regular file not yet yielded (same device and inode)."""
    try:
        st = os.stat(name)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and os.path.islink(name):
            warn(f"skipped {name}: a broken symbolic link")
            return False
        if exc.errno == errno.ELOOP:
            warn(f"skipped {name}: a symlink loop")
            return False
        return True  # the reader reports what is wrong with it (EL001)
    if not stat.S_ISREG(st.st_mode):
        warn(f"skipped {name}: not a regular file (a FIFO, socket or device would block the run)")
        return False
    ident = (st.st_dev, st.st_ino)
    if ident in seen:
        return False
    seen.add(ident)
    return True
