"""`--statistics`: one aligned row per rule (count, code, name, fixes on offer), then
the same summary line the findings list ends with, so the counts agree."""
from __future__ import annotations

from collections import Counter

from . import summary


def statistics_table(diagnostics, ctx) -> str:
    counts = Counter((d.code, d.name) for d in diagnostics)
    safe = Counter(d.code for d in diagnostics if d.fix and d.fix.applicability.value == "safe")
    unsafe = Counter(d.code for d in diagnostics if d.fix and d.fix.applicability.value == "unsafe")
    rows = []
    for (code, name), n in sorted(counts.items()):
        fixes = []
        if safe[code]:
            fixes.append(f"{safe[code]} fixable")
        if unsafe[code]:
            fixes.append(f"{unsafe[code]} unsafe-fixable")
        rows.append((str(n), code, name, ", ".join(fixes)))
    if not rows:
        return summary(diagnostics, ctx) + "\n"
    header = ("count", "code", "name", "fixes")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]

    def line(r) -> str:
        return f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()

    return "\n".join([line(header), *map(line, rows), summary(diagnostics, ctx)]) + "\n"
