"""Apply fixes to a fixed point.

Each pass applies the non-overlapping fixes found, re-parses, and checks again, up to
a bound. A fix whose result does not parse is dropped, so a written file always
parses; running fix again changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from .config import Settings
from .deepstack import call_with_big_stack
from .diagnostic import Applicability, Diagnostic, Fix
from .engine import FileResult, lint_source
from .registry import RuleSet
from .source import Source

MAX_PASSES = 10


@dataclass
class FixOutcome:
    source: Source
    applied: int
    diagnostics: list[Diagnostic] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    applied_codes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.applied > 0


def wanted(fix: Fix, unsafe: bool) -> bool:
    return fix.applicability is Applicability.SAFE or unsafe


def fix_source(source: Source, settings: Settings, rules: RuleSet, unsafe: bool, project=None) -> FixOutcome:
    outcome = FixOutcome(source, 0)
    result = lint_source(source, settings, rules, project=project)
    rejected: set[tuple] = set()
    for _ in range(MAX_PASSES):
        candidates = [d for d in result.diagnostics
                      if d.fix is not None and wanted(d.fix, unsafe) and _key(d) not in rejected]
        if not candidates:
            break
        chosen = _non_overlapping(candidates)
        new_source = _apply_checked(outcome.source, chosen, rejected)
        if new_source is None:
            continue
        outcome.applied += len(chosen) - sum(1 for d in chosen if _key(d) in rejected)
        outcome.applied_codes.extend(d.code for d in chosen if _key(d) not in rejected)
        outcome.source = new_source
        result = lint_source(new_source, settings, rules, project=project)
    outcome.diagnostics = result.diagnostics
    outcome.errors = result.errors
    return outcome


def _key(d: Diagnostic) -> tuple:
    return (d.code, d.cell, d.line, d.column, d.fix.edits if d.fix else None)


def _span(d: Diagnostic):
    e = d.fix.edits
    return [((x.cell or 0, x.line, x.column), (x.cell or 0, x.end_line, x.end_column)) for x in e]


def _non_overlapping(diags: list[Diagnostic]) -> list[Diagnostic]:
    chosen: list[Diagnostic] = []
    taken: list[tuple] = []
    for d in sorted(diags, key=lambda d: d.sort_key):
        spans = _span(d)
        if any(a < te and ta < b or (a == b == ta == te) for a, b in spans for ta, te in taken):
            continue
        chosen.append(d)
        taken.extend(spans)
    return chosen


def _parses(source: Source) -> bool:
    try:
        call_with_big_stack(cst.parse_module, source.text)
        return True
    except (cst.ParserSyntaxError, RecursionError):
        return False


def _apply_checked(source: Source, chosen: list[Diagnostic], rejected: set) -> Source | None:
    """Apply all chosen fixes; if the result does not parse, apply them one by one and
    drop the ones that break the file."""
    new = source.apply_edits([e for d in chosen for e in d.fix.edits])
    if _parses(new):
        return new
    current = source
    progressed = False
    for d in chosen:
        attempt = current.apply_edits(d.fix.edits)
        if _parses(attempt):
            current = attempt
            progressed = True
        else:
            rejected.add(_key(d))
    return current if progressed else None
