"""Which files a run checks: .py and .ipynb under the given paths, minus excludes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from .config import Settings

SUFFIXES = (".py", ".ipynb")


def discover(paths: list[str], settings: Settings) -> Iterator[str]:
    """Files in a stable order. Files named explicitly are included even when excluded,
    unless `force_exclude` is set (pre-commit names every changed file)."""
    seen: set[str] = set()
    for given in paths:
        p = Path(given)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                root_path = Path(root)
                dirs[:] = sorted(d for d in dirs if not settings.is_excluded(root_path / d))
                for name in sorted(files):
                    f = root_path / name
                    if name.endswith(SUFFIXES) and not settings.is_excluded(f):
                        s = str(f)
                        if s not in seen:
                            seen.add(s)
                            yield s
        else:
            if settings.force_exclude and settings.is_excluded(p):
                continue
            if given not in seen:
                seen.add(given)
                yield given
