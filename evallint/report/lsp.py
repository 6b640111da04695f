"""LSP-lite: `textDocument/publishDiagnostics` params per file, with LSP's 0-based
lines and UTF-16 (or UTF-8 / UTF-32) character offsets. The language server uses
the same conversion."""
from __future__ import annotations

import json
from pathlib import Path

from ..diagnostic import Diagnostic

SEVERITY = {"error": 1, "warning": 2, "info": 3}


def unit_column(text: str, col0: int, encoding: str = "utf-16") -> int:
    """Code-point column -> column in the client's position encoding."""
    prefix = text[:col0]
    if encoding == "utf-16":
        return len(prefix.encode("utf-16-le", "surrogatepass")) // 2
    if encoding == "utf-8":
        return len(prefix.encode("utf-8", "surrogatepass"))
    return len(prefix)


def lsp_range(line_text_of, line: int, col: int, end_line: int, end_col: int, encoding: str) -> dict:
    """1-based code-point positions -> an LSP range."""
    return {"start": {"line": line - 1, "character": unit_column(line_text_of(line), col - 1, encoding)},
            "end": {"line": end_line - 1, "character": unit_column(line_text_of(end_line), end_col - 1, encoding)}}


def to_lsp(diag: Diagnostic, line_text_of, encoding: str = "utf-16") -> dict:
    """One evallint diagnostic as an LSP Diagnostic. `line_text_of(line)` returns the
    text of a 1-based line of the diagnostic's document (its cell in a notebook)."""
    data = {"name": diag.name, "cell": diag.cell, "fix": None}
    if diag.fix is not None:
        data["fix"] = {
            "applicability": diag.fix.applicability.value, "message": diag.fix.message,
            "edits": [{"range": lsp_range(line_text_of, e.line, e.column, e.end_line, e.end_column, encoding),
                       "newText": e.content} for e in diag.fix.edits],
        }
    return {
        "range": lsp_range(line_text_of, diag.line, diag.column, diag.end_line, diag.end_column, encoding),
        "severity": SEVERITY[diag.severity.value],
        "code": diag.code,
        "codeDescription": {"href": f"https://evallint.dev/rules/{diag.code}"},
        "source": "evallint",
        "message": diag.message,
        "data": data,
    }


def line_reader(diag: Diagnostic, source):
    """Line text for a diagnostic's document: from the Source when we have it, else from
    the diagnostic's own context lines."""
    if source is not None:
        return lambda n: source.line_text(n, diag.cell)
    lines = dict(zip(range(diag.line, diag.line + len(diag.source_lines)), diag.source_lines))
    if diag.source_lines:
        lines[diag.end_line] = diag.source_lines[-1]
    return lambda n: lines.get(n, "")


def render(diagnostics, ctx) -> str:
    files: dict[str, list] = {}
    for d in diagnostics:
        files.setdefault(d.path, [])
    for path in ctx.files_checked:
        files.setdefault(path, [])
    for d in diagnostics:
        files[d.path].append(to_lsp(d, line_reader(d, ctx.sources.get(d.path))))
    out = [{"uri": Path(p).resolve().as_uri(), "diagnostics": ds} for p, ds in files.items()]
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"
