"""Output formats. Each format is a module with `render(diagnostics, ctx) -> str`."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..diagnostic import Diagnostic

FORMATS = ("full", "concise", "json", "lsp", "sarif", "github", "junit", "gitlab")
_MODULES = {"json": "json_"}


@dataclass
class ReportContext:
    rules: object                       # RuleSet
    cwd: Path = field(default_factory=Path.cwd)
    fixed: int = 0
    sources: dict = field(default_factory=dict)   # path -> Source (files with findings)
    files_checked: list = field(default_factory=list)
    color: bool = False
    unsafe_fixes: bool = False
    fixed_codes: list = field(default_factory=list)
    fix_requested: bool = False   # --fix (the remaining findings are what fixing left)
    diff: bool = False            # --diff: `fixed` counts what would be fixed


def render(fmt: str, diagnostics: list[Diagnostic], ctx: ReportContext) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    module = importlib.import_module(f"{__name__}.{_MODULES.get(fmt, fmt)}")
    return module.render(sorted(diagnostics, key=lambda d: d.sort_key), ctx)


NOTEBOOK_NOTE = ("In notebooks, `cell N` counts every cell from the top of the file, markdown cells "
                 "included (VS Code shows it as \"Cell N of M\" in the status bar), and the line is "
                 "counted inside the cell (JupyterLab: View > Show Line Numbers).")


def notebook_note(diagnostics: list[Diagnostic]) -> Optional[str]:
    """Said once under a report that holds notebook findings: what the numbers count."""
    return NOTEBOOK_NOTE if any(d.cell is not None for d in diagnostics) else None


def location(d: Diagnostic) -> str:
    """`path:line:col`, or `path:cell N:line:col` in a notebook."""
    cell = f"cell {d.cell}:" if d.cell is not None else ""
    return f"{d.path}:{cell}{d.line}:{d.column}"


def summary(diagnostics: list[Diagnostic], ctx: ReportContext) -> str:
    parts = []
    safe = sum(1 for d in diagnostics if d.fix and d.fix.applicability.value == "safe")
    unsafe = sum(1 for d in diagnostics if d.fix and d.fix.applicability.value == "unsafe")
    if ctx.diff:
        # --diff writes nothing: what the diff would fix, and what more could be.
        line = f"Would fix {ctx.fixed} finding{'s' if ctx.fixed != 1 else ''}"
        more = unsafe if not ctx.unsafe_fixes else 0
        parts.append(line + (f" ({more} more with `--unsafe-fixes`)." if more else "."))
        if diagnostics:
            n = len(diagnostics)
            parts.append(f"{n} finding{'s' if n != 1 else ''} would remain.")
        return " ".join(parts)
    if ctx.fixed:
        parts.append(f"Fixed {ctx.fixed} finding{'s' if ctx.fixed != 1 else ''}.")
    n = len(diagnostics)
    if n == 0:
        parts.append("All checks passed!" if not ctx.fixed else "No findings left.")
        return " ".join(parts)
    line = f"Found {n} finding{'s' if n != 1 else ''}"
    hints = []
    if safe:
        hints.append(f"{safe} fixable with `evallint check --fix`")
    if unsafe:
        more = "more " if safe else ""
        hints.append(f"{unsafe} {more}with `evallint check --fix --unsafe-fixes`")
    parts.append(line + (f" ({'; '.join(hints)})." if hints else "."))
    return " ".join(parts)


def fix_label(d: Diagnostic) -> Optional[str]:
    if d.fix is None:
        return None
    return f"{d.fix.message} ({d.fix.applicability.value} fix)"
