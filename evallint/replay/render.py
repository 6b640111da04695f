"""Replay reports as a rich table (text) or JSON."""
from __future__ import annotations

import io
import json

from .report import CONFIRMED, NOT_REPRODUCED, ReplayReport

_STYLE = {CONFIRMED: "bold red", NOT_REPRODUCED: "green"}


def render(report: ReplayReport, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
    if fmt != "text":
        raise ValueError(f"unknown replay format {fmt!r}; use text or json")
    return _text(report)


def _text(report: ReplayReport) -> str:
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=False, color_system=None, highlight=False)
    if report.error:
        console.print(f"evallint replay: {report.path}: {report.error}")
        return buf.getvalue()
    where = f"device: {report.device}" if report.device else "device: (not started)"
    torch = f", torch {report.torch_version}" if report.torch_version else ""
    console.print(f"evallint replay {report.path}  ({where}{torch}, seed {report.seed})")
    if not report.findings:
        console.print("no findings to replay")
        return buf.getvalue()
    table = Table(show_lines=False)
    for col in ("rule", "line", "metric", "as written", "after fix", "ground truth", "verdict"):
        table.add_column(col, overflow="fold", no_wrap=col == "line")  # "4 (cell 6)" stays whole
    for f in report.findings:
        verdict = f.verdict_text if f.verdict != CONFIRMED else f"{CONFIRMED}: {f.reason}"
        if f.verdict == NOT_REPRODUCED and f.reason:
            verdict = f"{NOT_REPRODUCED}: {f.reason}"
        line = str(f.line) if f.cell is None else f"{f.line} (cell {f.cell})"  # as `check` counts it
        table.add_row(f.code, line, f.metric or "—", f.written or "—", f.fixed or "—", f.truth or "—",
                      verdict, style=_STYLE.get(f.verdict, ""))
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    console.print(f"{report.confirmed} of {len(report.findings)} findings confirmed in {report.seconds:.1f}s")
    return buf.getvalue()
