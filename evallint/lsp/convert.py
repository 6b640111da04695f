"""evallint positions and fixes -> LSP diagnostics, ranges and text edits.

Works on a LintedDocument so that every column is converted against the text the
client holds, in the encoding negotiated at initialize.
"""
from __future__ import annotations

from typing import Optional

from ..diagnostic import Diagnostic, Edit, Fix
from .linting import LintedDocument
from .notebook_map import NotebookMap
from .positions import char_to_unit, unit_to_char

_SEVERITY = {"error": 1, "warning": 2, "info": 3}


class DocumentPositions:
    """Maps evallint (line, column, cell) to LSP positions in one document and back."""

    def __init__(self, doc: LintedDocument, encoding: str) -> None:
        self.encoding = encoding
        self.lines = [line.rstrip("\r") for line in doc.text.split("\n")]
        # A notebook is edited as JSON text: cell positions go through its map.
        self.notebook = NotebookMap.build(doc.text) if doc.is_notebook else None

    def position(self, line: int, column: int, cell: Optional[int] = None) -> dict:
        """1-based line and column (code points), cell-relative in notebooks."""
        if cell is not None and self.notebook is not None:
            line0, col0 = self.notebook.locate(cell, line, column - 1)
        else:
            line0, col0 = line - 1, column - 1
        if line0 >= len(self.lines):
            return self.end()
        line0 = max(line0, 0)
        return {"line": line0, "character": char_to_unit(self.lines[line0], col0, self.encoding)}

    def range(self, line: int, column: int, end_line: int, end_column: int,
              cell: Optional[int] = None) -> dict:
        return {"start": self.position(line, column, cell),
                "end": self.position(end_line, end_column, cell)}

    def end(self) -> dict:
        last = len(self.lines) - 1
        return {"line": last, "character": char_to_unit(self.lines[last], len(self.lines[last]), self.encoding)}

    def to_char(self, position: dict) -> tuple[int, int]:
        """An incoming LSP position -> (0-based line, 0-based code-point column)."""
        line0 = min(max(int(position["line"]), 0), len(self.lines) - 1)
        return line0, unit_to_char(self.lines[line0], int(position["character"]), self.encoding)


def to_lsp_diagnostic(diag: Diagnostic, positions: DocumentPositions, docs_url: str) -> dict:
    data = {"name": diag.name, "cell": diag.cell, "fix": diag.fix.to_json() if diag.fix else None}
    return {
        "range": positions.range(diag.line, diag.column, diag.end_line, diag.end_column, diag.cell),
        "severity": _SEVERITY.get(diag.severity.value, 2),
        "code": diag.code,
        "codeDescription": {"href": docs_url},
        "source": "evallint",
        "message": diag.message,
        "data": data,
    }


def fix_edits(fix: Fix, positions: DocumentPositions) -> list[dict]:
    return [edit_to_lsp(e, positions) for e in fix.edits]


def edit_to_lsp(edit: Edit, positions: DocumentPositions) -> dict:
    return {"range": positions.range(edit.line, edit.column, edit.end_line, edit.end_column, edit.cell),
            "newText": edit.content}


def whole_document_edit(new_text: str, positions: DocumentPositions) -> dict:
    return {"range": {"start": {"line": 0, "character": 0}, "end": positions.end()}, "newText": new_text}
