"""Apply fixes to a fixed point.

Each pass applies the non-overlapping fixes found, re-parses, and checks again, up to
a bound. A fix whose result does not parse is dropped, so a written file always
parses; running fix again changes nothing. A fix after which its rule still reports
the same finding is refused (it would be applied again on every pass): the pass is
redone without it, the finding stays, without a fix, and the refusal is reported.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Optional

import libcst as cst

from .config import Settings
from .deepstack import call_with_big_stack
from .diagnostic import Applicability, Diagnostic, Fix
from .engine import FileResult, lint_source
from .registry import ENGINE_RULES, RuleSet
from .source import Source
from .splice import reparse

MAX_PASSES = 10
_SYNTAX_CODE = ENGINE_RULES[0].code


@dataclass
class FixOutcome:
    source: Source
    applied: int
    diagnostics: list[Diagnostic] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    applied_codes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)   # fixes that did not remove their finding

    @property
    def changed(self) -> bool:
        return self.applied > 0


def wanted(fix: Fix, unsafe: bool) -> bool:
    return fix.applicability is Applicability.SAFE or unsafe


def fix_source(source: Source, settings: Settings, rules: RuleSet, unsafe: bool, project=None) -> FixOutcome:
    outcome = FixOutcome(source, 0)
    result = lint_source(source, settings, rules, project=project)
    rejected: set[tuple] = set()
    stubborn: set[tuple] = set()   # identities of findings whose fix was refused
    for _ in range(MAX_PASSES):
        candidates = [d for d in result.diagnostics
                      if d.fix is not None and wanted(d.fix, unsafe) and _key(d) not in rejected
                      and identity(d) not in stubborn]
        if not candidates:
            break
        chosen = _non_overlapping(candidates)
        new_source = _apply_checked(outcome.source, chosen, rejected)
        if new_source is None:
            continue
        applied = [d for d in chosen if _key(d) not in rejected]
        new_result = lint_source(new_source, settings, rules, project=project)
        kept = not_removed(result.diagnostics, applied, new_result.diagnostics)
        if kept:
            stubborn |= kept
            outcome.refused += [_refusal(d) for d in applied if identity(d) in kept]
            continue  # redo this pass without them
        outcome.applied += len(applied)
        outcome.applied_codes.extend(d.code for d in applied)
        outcome.source = new_source
        result = new_result
    outcome.diagnostics = [replace(d, fix=None) if d.fix is not None and identity(d) in stubborn else d
                           for d in result.diagnostics]
    outcome.errors = result.errors
    return outcome


def verify_offered_fixes(source: Source, result: FileResult, settings: Settings, rules: RuleSet) -> list[str]:
    """For a check (no fix): apply the fixes on offer once, re-check, and withdraw each
    fix that breaks the file or leaves its own finding in place, so no fix is offered
    that its rule would not accept afterwards. Edits `result` in place; returns the
    refusals. Costs one more check, and only for files with fixes."""
    offered = [d for d in result.diagnostics if d.fix is not None]
    if not offered:
        return []
    chosen = _non_overlapping(offered)
    rejected: set[tuple] = set()
    # One check of the fixed text, with only the rules whose fixes were applied and the
    # syntax check: it tells both whether the text parses and what is left.
    codes = {d.code for d in chosen}
    narrow = replace(settings, enabled=frozenset(codes | {_SYNTAX_CODE}))
    new_source = source.apply_edits([e for d in chosen for e in d.fix.edits])
    after = lint_source(new_source, narrow, rules, module=_edited_tree(source, result, new_source)).diagnostics
    if any(d.code == _SYNTAX_CODE for d in after):  # some fix breaks the file: find which
        new_source = _apply_checked(source, chosen, rejected)
        after = lint_source(new_source, narrow, rules).diagnostics if new_source is not None else []
    bad: set[tuple] = set()
    if new_source is not None:
        applied = [d for d in chosen if _key(d) not in rejected]
        bad = not_removed(result.diagnostics, applied, after)
    refusals = [_refusal(d) for d in chosen if _key(d) in rejected or identity(d) in bad]
    if refusals:
        result.diagnostics = [replace(d, fix=None) if _key(d) in rejected or identity(d) in bad else d
                              for d in result.diagnostics]
    return refusals


def _edited_tree(source: Source, result: FileResult, edited: Source) -> Optional[cst.Module]:
    """The tree of the edited text from the checked one, parsing only the statements
    the fixes touched (a fix changes a line or two of a file); None: parse it all."""
    if result.tree is None or source.notebook is not None or edited.notebook is not None:
        return None
    try:
        return call_with_big_stack(reparse, result.tree, source.text, edited.text)
    except RecursionError:
        return None


def identity(d: Diagnostic) -> tuple:
    """A finding as a person recognises it, wherever edits moved it: the rule, the
    message and the flagged text without its indentation."""
    return d.code, d.message, tuple(line.strip() for line in d.source_lines)


def not_removed(before: list[Diagnostic], applied: list[Diagnostic], after: list[Diagnostic]) -> set[tuple]:
    """Identities of applied fixes whose findings are all still there afterwards
    (k identical findings, j of them fixed: more than k - j left means a fix failed)."""
    was, now = Counter(map(identity, before)), Counter(map(identity, after))
    fixed = Counter(map(identity, applied))
    return {i for i, j in fixed.items() if now[i] > was[i] - j}


def _refusal(d: Diagnostic) -> str:
    where = f"{d.path}:cell {d.cell}:{d.line}" if d.cell is not None else f"{d.path}:{d.line}"
    return (f"{where}: the {d.code} fix was not applied: the rule still reports the same finding after it "
            "(a bug in the rule; please report it)")


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
