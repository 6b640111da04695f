"""`path:line:col: CODE message`, one line each: for grep and editors.

In a notebook the line is counted inside the cell and the cell is named right after
the code (`nb.ipynb:7:9: EL101 [cell 3] ...`), so Vim's default 'errorformat'
(`%f:%l:%c:%m`) and other `file:line:col` parsers read every line alike.
"""
from __future__ import annotations

from . import notebook_note, summary


def render(diagnostics, ctx) -> str:
    lines = [f"{d.path}:{d.line}:{d.column}: {d.code}{_cell(d)}{' [*]' if d.fix else ''} {d.message}"
             for d in diagnostics]
    note = notebook_note(diagnostics)
    if note:
        lines.append(note)
    lines.append(summary(diagnostics, ctx))
    return "\n".join(lines) + "\n"


def _cell(d) -> str:
    return f" [cell {d.cell}]" if d.cell is not None else ""
