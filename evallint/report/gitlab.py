"""GitLab Code Quality report (a JSON list of issues), for merge-request widgets.

GitLab matches issues between the base and head pipelines by `fingerprint`, so it
must survive unrelated edits: it is the baseline fingerprint (code, path, flagged
text, cell, occurrence), computed relative to the working directory, which in CI is
the repository root GitLab expects paths relative to. In a notebook the line is the
line inside the cell, and the description names the cell.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..baseline import fingerprints, relative_posix
from ..diagnostic import Diagnostic, Severity

SEVERITIES = {Severity.INFO: "info", Severity.WARNING: "major", Severity.ERROR: "critical"}


def render(diagnostics: list[Diagnostic], ctx: Any) -> str:
    diagnostics = sorted(diagnostics, key=lambda d: d.sort_key)
    cwd = Path(ctx.cwd)
    prints = fingerprints(diagnostics, cwd, cwd)
    issues = [_issue(d, fp, cwd) for d, fp in zip(diagnostics, prints)]
    return json.dumps(issues, indent=2) + "\n"


def _issue(diag: Diagnostic, fingerprint: str, cwd: Path) -> dict:
    where = "" if diag.cell is None else f"Cell {diag.cell}: "
    return {
        "description": f"{diag.code} {where}{diag.message}",
        "check_name": diag.code,
        "fingerprint": fingerprint,
        "severity": SEVERITIES[diag.severity],
        "location": {
            "path": relative_posix(diag.path, cwd, cwd),
            "lines": {"begin": diag.line, "end": diag.end_line},
        },
    }
