"""Where a notebook line starts a Python statement, for masking IPython magics.

IPython treats `%magic`, `!cmd`, `obj?` and `x = !cmd` as its own syntax only where a
statement starts. A line that continues an open bracket, a backslash continuation
or a triple-quoted string is Python: `% (epoch, cost)` there is the formatting
operator. This scanner follows brackets, strings and continuations line by line
(it does not need the cell to be valid Python, unlike `tokenize`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

_OPEN, _CLOSE = "([{", ")]}"


@dataclass
class LineState:
    """The scanner's state between lines."""

    depth: int = 0                 # open brackets
    string: Optional[str] = None   # the quote of a string still open at the line end
    backslash: bool = False        # the previous line ended with a continuation backslash

    @property
    def at_statement_start(self) -> bool:
        return self.depth == 0 and self.string is None and not self.backslash


def scan_line(line: str, state: LineState) -> LineState:
    """The state after `line` (without its newline), given the state before it."""
    depth, string = state.depth, state.string
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if string is not None:
            if c == "\\":
                i += 2
                continue
            if line.startswith(string, i):
                i += len(string)
                string = None
                continue
            i += 1
            continue
        if c == "#":
            break
        if c in "'\"":
            quote = line[i:i + 3] if line.startswith(c * 3, i) else c
            string = quote
            i += len(quote)
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(depth - 1, 0)
        elif c == "\\" and i == n - 1:
            return LineState(depth, None, True)
        i += 1
    if string is not None and len(string) == 1:
        # A one-quote string ends at the line's end unless its last character escapes it.
        ends_escaped = line.endswith("\\") and (len(line) - len(line.rstrip("\\"))) % 2 == 1
        return LineState(depth, string if ends_escaped else None, False)
    return LineState(depth, string, False)


def magic_lines(lines: list[str], is_magic) -> list[bool]:
    """For each line, whether it is IPython syntax to be masked.

    `is_magic(line)` decides on a line that starts a statement. A masked line is not
    Python and leaves the state as it was; a magic ending with a backslash goes on
    to the next line (IPython joins them)."""
    out = []
    state = LineState()
    in_magic = False
    for line in lines:
        if in_magic or (state.at_statement_start and is_magic(line)):
            out.append(True)
            in_magic = line.rstrip().endswith("\\")
            continue
        out.append(False)
        state = scan_line(line, state)
    return out
