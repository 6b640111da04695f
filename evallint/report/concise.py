"""`path:line:col: CODE message`, one line each: for grep and editors."""
from __future__ import annotations

from . import location, summary


def render(diagnostics, ctx) -> str:
    lines = [f"{location(d)}: {d.code}{' [*]' if d.fix else ''} {d.message}" for d in diagnostics]
    lines.append(summary(diagnostics, ctx))
    return "\n".join(lines) + "\n"
