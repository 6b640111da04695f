"""SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.

Positions: evallint's 1-based code-point columns are SARIF's columns once the run
declares `columnKind: unicodeCodePoints` (the default, UTF-16 units, would shift
columns after astral characters). Regions use SARIF's exclusive end column, as
evallint does.

Notebooks: SARIF has no notion of cells, so for a diagnostic in a notebook the region
keeps evallint's line inside the cell, the region's `properties.cell` holds the 1-based
cell index, and the message starts with "Cell N: " so a human reader is not misled by
the line number. Fixes are left out for notebooks: a SARIF consumer would apply them to
lines of the .ipynb JSON file, not of the cell.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from .. import __version__
from ..baseline import fingerprints
from ..diagnostic import Diagnostic, Edit, Severity

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://evallint.dev"
FINGERPRINT_KEY = "evallint/v1"
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def render(diagnostics: list[Diagnostic], ctx: Any) -> str:
    return json.dumps(to_sarif(diagnostics, ctx), indent=2) + "\n"


def to_sarif(diagnostics: list[Diagnostic], ctx: Any) -> dict:
    diagnostics = sorted(diagnostics, key=lambda d: d.sort_key)
    cwd = Path(ctx.cwd)
    rules = _rules(diagnostics, ctx)
    index = {rule.code: i for i, rule in enumerate(rules)}
    prints = fingerprints(diagnostics, cwd, cwd)
    results = [_result(d, index[d.code], fp, cwd) for d, fp in zip(diagnostics, prints)]
    run = {
        "tool": {"driver": {
            "name": "evallint",
            "version": __version__,
            "semanticVersion": __version__,
            "informationUri": INFORMATION_URI,
            "rules": [_descriptor(rule) for rule in rules],
        }},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": cwd.resolve().as_uri() + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _rules(diagnostics: list[Diagnostic], ctx: Any) -> list:
    """Every registered rule and engine code, plus any code a diagnostic carries that
    the registry does not know (a rule pack loaded elsewhere), sorted by code."""
    by_code = {rule.code: rule for rule in ctx.rules.all()}
    for rule in _engine_rules(ctx.rules):
        by_code.setdefault(rule.code, rule)
    for diag in diagnostics:
        if diag.code not in by_code:
            by_code[diag.code] = ctx.rules.get(diag.code) or _UnknownRule(diag)
    return [by_code[code] for code in sorted(by_code)]


def _engine_rules(ruleset: Any) -> list:
    return [rule for rule in (ruleset.get(code) for code in ruleset.engine_codes()) if rule is not None]


class _UnknownRule:
    """Descriptor for a code the registry cannot describe."""

    def __init__(self, diag: Diagnostic) -> None:
        self.code, self.name, self.summary, self.severity = diag.code, diag.name, diag.name, diag.severity

    def documentation(self) -> str:
        return self.summary

    def docs_url(self) -> Optional[str]:
        return None


def _descriptor(rule: Any) -> dict:
    doc = rule.documentation() or rule.summary
    descriptor = {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": _what_it_does(doc) or rule.summary},
        "help": {"text": doc, "markdown": doc},
        "defaultConfiguration": {"level": LEVELS[Severity(rule.severity)]},
    }
    url = rule.docs_url()
    if url:
        descriptor["helpUri"] = url
    return descriptor


_HEADING = re.compile(r"^\s*#+\s*(.*?)\s*:?\s*$")


def _what_it_does(doc: str) -> str:
    """The body of the documentation's 'What it does' section, if it has one."""
    body: list[str] = []
    inside = False
    for line in doc.splitlines():
        heading = _HEADING.match(line)
        if heading:
            if inside:
                break
            inside = heading.group(1).lower() == "what it does"
        elif inside:
            body.append(line)
    return " ".join(" ".join(body).split())  # one paragraph: the docstring's wrapping is noise


def _artifact(path: str, cwd: Path) -> dict:
    root = Path(cwd).resolve()
    full = Path(os.path.normpath(root / path))
    try:
        rel = full.relative_to(root).as_posix()
    except ValueError:  # outside the source root: an absolute file URI
        return {"uri": full.as_uri()}
    return {"uri": quote(rel), "uriBaseId": "%SRCROOT%"}


def _region(line: int, column: int, end_line: int, end_column: int, cell: Optional[int]) -> dict:
    region = {"startLine": line, "startColumn": column, "endLine": end_line, "endColumn": end_column}
    if cell is not None:
        region["properties"] = {"cell": cell}
    return region


def _result(diag: Diagnostic, rule_index: int, fingerprint: str, cwd: Path) -> dict:
    artifact = _artifact(diag.path, cwd)
    text = diag.message if diag.cell is None else f"Cell {diag.cell}: {diag.message}"
    location: dict = {"artifactLocation": artifact}
    if diag.line >= 1:  # line 0 would mean the whole file (no region)
        location["region"] = _region(diag.line, max(diag.column, 1), diag.end_line,
                                     max(diag.end_column, 1), diag.cell)
    result = {
        "ruleId": diag.code,
        "ruleIndex": rule_index,
        "level": LEVELS[diag.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": location}],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
    }
    if diag.fix is not None and diag.fix.edits and diag.cell is None:
        result["fixes"] = [{
            "description": {"text": diag.fix.message},
            "artifactChanges": [{
                "artifactLocation": artifact,
                "replacements": [_replacement(edit) for edit in diag.fix.edits],
            }],
            "properties": {"applicability": diag.fix.applicability.value},
        }]
    return result


def _replacement(edit: Edit) -> dict:
    return {
        "deletedRegion": _region(edit.line, edit.column, edit.end_line, edit.end_column, edit.cell),
        "insertedContent": {"text": edit.content},
    }
