"""Unified diffs a person reads: of the Python text, and for a notebook of each changed
cell's source (not of the escaped JSON lines that hold it)."""
from __future__ import annotations

import difflib

from .source import Source


def source_diff(old: Source, new: Source) -> str:
    if old.notebook is None or new.notebook is None:
        return _diff(old.text, new.text, f"a/{old.path}", f"b/{old.path}")
    parts = []
    for index, (a, b) in enumerate(zip(old.notebook.cell_texts, new.notebook.cell_texts), 1):
        if a is None or b is None or a == b:
            continue
        # Cells are counted as in the file, markdown included (as evallint reports them).
        parts.append(_diff(_ended(a), _ended(b), f"a/{old.path}:cell {index}", f"b/{old.path}:cell {index}"))
    return "".join(parts)


def _ended(text: str) -> str:
    # The last line of a cell has no newline in the JSON; diff it as a whole line.
    return text if text.endswith("\n") or not text else text + "\n"


def _diff(a: str, b: str, fromfile: str, tofile: str) -> str:
    return "".join(difflib.unified_diff(_lines(a), _lines(b), fromfile=fromfile, tofile=tofile))


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        # patch(1)'s marker; part of the line, so a changed ending shows as a change
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines
