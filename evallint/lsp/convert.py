"""evallint positions and fixes -> LSP diagnostics, ranges and text edits.

The diagnostic conversion is `evallint.report.lsp.to_lsp`, shared with `--format lsp`;
this module feeds it the text the client holds, in the negotiated encoding, and
re-anchors notebook findings into the notebook's JSON text.
"""
from __future__ import annotations

from typing import Callable, Optional

from ..diagnostic import Diagnostic, Edit, Fix
from ..report.lsp import to_lsp, unit_column
from .linting import LintedDocument
from .notebook_map import NotebookMap


class DocumentPositions:
    """Maps evallint (line, column, cell) to LSP positions in one open document."""

    def __init__(self, doc: LintedDocument, encoding: str) -> None:
        self.doc = doc
        self.encoding = encoding
        # Same line split as evallint's LineIndex: only "\n" ends a line.
        self.lines = [line.rstrip("\r") for line in doc.text.split("\n")]
        # A notebook is edited as JSON text: cell positions go through its map.
        self.notebook = NotebookMap.build(doc.text) if doc.is_notebook else None

    def line_text_of(self, cell: Optional[int]) -> Callable[[int], str]:
        """1-based line -> its text, in the document (or, for a notebook, the cell)."""
        if cell is not None and self.doc.source is not None:
            return lambda n: self.doc.source.line_text(n, cell)
        return lambda n: self.lines[n - 1] if 0 < n <= len(self.lines) else ""

    def position(self, line: int, column: int, cell: Optional[int] = None) -> dict:
        """1-based line and column (code points), cell-relative in notebooks."""
        if cell is not None and self.notebook is not None:
            line0, col0 = self.notebook.locate(cell, line, column - 1)
        else:
            line0, col0 = line - 1, column - 1
        if line0 >= len(self.lines):
            return self.end()
        line0 = max(line0, 0)
        return {"line": line0, "character": unit_column(self.lines[line0], col0, self.encoding)}

    def range(self, line: int, column: int, end_line: int, end_column: int,
              cell: Optional[int] = None) -> dict:
        return {"start": self.position(line, column, cell),
                "end": self.position(end_line, end_column, cell)}

    def end(self) -> dict:
        last = self.lines[-1]
        return {"line": len(self.lines) - 1, "character": unit_column(last, len(last), self.encoding)}


def to_lsp_diagnostic(diag: Diagnostic, positions: DocumentPositions) -> dict:
    lsp = to_lsp(diag, positions.line_text_of(diag.cell), positions.encoding)
    if diag.cell is not None and positions.notebook is not None:
        # --format lsp keeps cell coordinates; in the JSON buffer the range must
        # cover the characters of the cell's code inside the JSON strings.
        lsp["range"] = positions.range(diag.line, diag.column, diag.end_line, diag.end_column, diag.cell)
    return lsp


def fix_edits(fix: Fix, positions: DocumentPositions) -> list[dict]:
    return [edit_to_lsp(e, positions) for e in fix.edits]


def edit_to_lsp(edit: Edit, positions: DocumentPositions) -> dict:
    return {"range": positions.range(edit.line, edit.column, edit.end_line, edit.end_column, edit.cell),
            "newText": edit.content}


def whole_document_edit(new_text: str, positions: DocumentPositions) -> dict:
    return {"range": {"start": {"line": 0, "character": 0}, "end": positions.end()}, "newText": new_text}
