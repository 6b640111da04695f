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
        # Inside JSON strings an edit would need escaping and line splitting: let the
        # notebook writer do it and replace the document.
        fixed = doc.source.apply_edits(diag.fix.edits)
        return [whole_document_edit(fixed.notebook.raw, positions)]
    return fix_edits(diag.fix, positions)


def _client_copy(lsp: dict, client_diags: list[dict]) -> dict:
    """The client's own copy of the diagnostic when it sent one (clients match by value)."""
    for cd in client_diags:
        if cd.get("source") == "evallint" and cd.get("code") == lsp["code"] and cd.get("range") == lsp["range"]:
            return cd
    return lsp
