"""Follow a position of the original text into the text after a fix's edits."""
from __future__ import annotations

from ..textpos import LineIndex


def edit_spans(source, edits) -> list[tuple[int, int, int]]:
    """(start offset, end offset, inserted length) of each edit in `source.text`;
    notebook edits (cell-relative) are moved to the virtual module first."""
    index = LineIndex(source.text)
    spans = []
    for e in edits:
        line = _virtual(source, e.cell, e.line)
        end_line = _virtual(source, e.cell, e.end_line)
        spans.append((index.offset(line, e.column - 1), index.offset(end_line, e.end_column - 1), len(e.content)))
    return sorted(spans)


def map_position(old_text: str, new_text: str, pos: tuple[int, int], spans) -> tuple[int, int]:
    """(line, 0-based column) in old_text -> the same place in new_text. A position
    inside a replaced span goes to the span's start (the code there was rewritten)."""
    old = LineIndex(old_text)
    offset = old.offset(pos[0], pos[1])
    delta = 0
    for start, end, inserted in spans:
        if end <= offset:
            delta += inserted - (end - start)
        elif start <= offset < end:
            offset = start
            break
    return LineIndex(new_text).position(offset + delta)


def virtual_line(source, cell, line: int) -> int:
    return _virtual(source, cell, line)


def _virtual(source, cell, line: int) -> int:
    to_virtual = getattr(source, "to_virtual", None)
    return to_virtual(cell, line) if (to_virtual and cell is not None) else line
