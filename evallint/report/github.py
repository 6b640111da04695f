"""GitHub Actions workflow commands: one annotation per diagnostic.

Escaping follows GitHub's toolkit (`@actions/core` command.ts): the message escapes
`%`, CR and LF; property values additionally escape `:` and `,`, which would
otherwise end the value. In a notebook the line inside a cell does not address a line
of the .ipynb file, so the annotation is attached to the file and the message names
the cell, line and column.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..baseline import relative_posix
from ..diagnostic import Diagnostic, Severity

COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(diagnostics: list[Diagnostic], ctx: Any) -> str:
    lines = [_annotation(d, Path(ctx.cwd)) for d in sorted(diagnostics, key=lambda d: d.sort_key)]
    return "".join(line + "\n" for line in lines)


def _annotation(diag: Diagnostic, cwd: Path) -> str:
    # Workflow paths are relative to the workspace, which is the cwd of a CI step.
    props = {"file": relative_posix(diag.path, cwd, cwd)}
    message = diag.message
    if diag.cell is None:
        props.update(line=diag.line, col=diag.column, endLine=diag.end_line, endColumn=diag.end_column)
    else:
        message = f"Cell {diag.cell}, line {diag.line}, column {diag.column}: {message}"
    props["title"] = diag.code
    joined = ",".join(f"{key}={escape_property(str(value))}" for key, value in props.items())
    return f"::{COMMANDS[diag.severity]} {joined}::{escape_data(message)}"
