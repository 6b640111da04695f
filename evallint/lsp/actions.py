"""Code actions: one quick fix per fixable finding, and "fix all" as a source action.

Everything here is plain LSP JSON (dicts); the server structures it into lsprotocol
types at the boundary.
"""
from __future__ import annotations

from typing import Callable, Optional

from ..diagnostic import Applicability, Diagnostic
from .convert import DocumentPositions, fix_edits, whole_document_edit
from .linting import LintedDocument

QUICKFIX = "quickfix"
FIX_ALL = "source.fixAll.evallint"


def wants(kind: str, only: Optional[list[str]]) -> bool:
    """LSP's `only` filter: a requested kind matches itself and its sub-kinds."""
    return only is None or any(kind == k or kind.startswith(k + ".") for k in only)


def overlaps(a: dict, b: dict) -> bool:
    # Both ranges are in the same document and encoding, so units compare directly.
    def key(p: dict) -> tuple[int, int]:
        return p["line"], p["character"]
    return key(a["start"]) <= key(b["end"]) and key(b["start"]) <= key(a["end"])


def quick_fixes(doc: LintedDocument, lsp_diags: list[tuple[Diagnostic, dict]], request_range: dict,
                client_diags: list[dict], positions: DocumentPositions) -> list[dict]:
    actions = []
    for diag, lsp in lsp_diags:
        if diag.fix is None or not overlaps(lsp["range"], request_range):
            continue
        safe = diag.fix.applicability is Applicability.SAFE
        title = f"{diag.code}: {diag.fix.message}" + ("" if safe else " (unsafe)")
        actions.append({
            "title": title,
            "kind": QUICKFIX,
            "diagnostics": [_client_copy(lsp, client_diags)],
            "isPreferred": safe,
            "edit": {"changes": {doc.uri: _edits_for(diag, doc, positions)}},
        })
    return actions


def fix_all(doc: LintedDocument, fixed_text: Callable[[LintedDocument], Optional[str]],
            positions: DocumentPositions) -> list[dict]:
    if not any(d.fix is not None for d in doc.diagnostics):
        return []  # nothing can change: skip the fixer's re-lint loop
    new_text = fixed_text(doc)
    if new_text is None:
        return []
    return [{
        "title": "Fix all evallint findings",
        "kind": FIX_ALL,
        "edit": {"changes": {doc.uri: [whole_document_edit(new_text, positions)]}},
    }]


def _edits_for(diag: Diagnostic, doc: LintedDocument, positions: DocumentPositions) -> list[dict]:
    if doc.source is not None and doc.source.notebook is not None:
        # Inside JSON strings an edit needs escaping and line splitting: let the
        # notebook writer do it, then send only the JSON lines that changed (the
        # cell's own lines), so the editor's undo and cursor stay where they were.
        fixed = doc.source.apply_edits(diag.fix.edits)
        return [changed_lines_edit(doc.text, fixed.notebook.raw, positions)]
    return fix_edits(diag.fix, positions)


def changed_lines_edit(old: str, new: str, positions: DocumentPositions) -> dict:
    """One edit replacing the lines between the common first and last lines."""
    a, b = old.split("\n"), new.split("\n")
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    if head == len(a) == len(b):
        return whole_document_edit(new, positions)  # no change: nothing better to say
    # Lines head .. len(a)-tail-1 of the old text become the middle lines of the new one.
    replaced = b[head: len(b) - tail]
    start = {"line": head, "character": 0}
    end_line = len(a) - tail
    if end_line < len(a):
        end = {"line": end_line, "character": 0}
        text = "".join(line + "\n" for line in replaced)
    else:  # the change reaches the last line: end at the end of the document
        end = positions.end()
        text = "\n".join(replaced)
        if head > 0 and head == len(a):
            start = positions.end()
            text = "\n" + text
    return {"range": {"start": start, "end": end}, "newText": text}


def _client_copy(lsp: dict, client_diags: list[dict]) -> dict:
    """The client's own copy of the diagnostic when it sent one (clients match by value)."""
    for cd in client_diags:
        if cd.get("source") == "evallint" and cd.get("code") == lsp["code"] and cd.get("range") == lsp["range"]:
            return cd
    return lsp
