"""Conversions between (line, column) positions and string offsets.

Lines are 1-based; columns are 0-based code-point offsets inside the line here (the
diagnostic layer adds 1). Only '\n' separates lines; a '\r' before it stays part of
the line's text, which keeps CRLF files' columns right.
"""
from __future__ import annotations

from bisect import bisect_right


class LineIndex:
    def __init__(self, text: str) -> None:
        self.text = text
        starts = [0]
        find = text.find
        i = find("\n")
        while i != -1:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self.starts = starts

    def offset(self, line: int, col: int) -> int:
        if line - 1 >= len(self.starts):
            return len(self.text)
        return min(self.starts[line - 1] + col, len(self.text))

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1]

    def line_text(self, line: int) -> str:
        if not 1 <= line <= len(self.starts):
            return ""
        start = self.starts[line - 1]
        end = self.starts[line] - 1 if line < len(self.starts) else len(self.text)
        return self.text[start:end].rstrip("\r")

    @property
    def line_count(self) -> int:
        return len(self.starts)


def apply_text_edits(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Apply non-overlapping (start, end, content) offset edits."""
    out = []
    pos = 0
    for start, end, content in sorted(spans, key=lambda s: (s[0], s[1])):
        if start < pos:
            raise ValueError("overlapping edits")
        out.append(text[pos:start])
        out.append(content)
        pos = end
    out.append(text[pos:])
    return "".join(out)
