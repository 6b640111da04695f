"""Check one source: prefilter, parse once, build the facts, run every selected rule,
turn findings into diagnostics (positions only for what is reported), suppress."""
from __future__ import annotations

import ast
import traceback
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from .config import Settings
from .deepstack import call_with_big_stack
from .diagnostic import Diagnostic, Edit, Fix
from .facts import ModuleFacts
from .fastparse import parse_module
from .registry import ENGINE_RULES, RuleSet
from .source import Source, SourceError
from .spans import PrintMemo, node_spans, render, syntactic_start
from .suppress import is_suppressed, skips_file
from .textpos import LineIndex

_SYNTAX, _UNREADABLE = ENGINE_RULES
_MAX_CONTEXT_LINES = 20


@dataclass
class FileResult:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    source: Optional[Source] = None
    errors: list[str] = field(default_factory=list)  # internal errors (exit 2)
    summary: Optional[dict] = None  # the module's project summary (project runs only)
    # The parsed tree, for the caller that re-checks an edit of the same text (fix
    # verification splices the edited statements into it instead of parsing again).
    tree: Optional[cst.Module] = field(default=None, repr=False, compare=False)


def lint_path(path: str, settings: Settings, rules: RuleSet) -> FileResult:
    try:
        source = Source.read(path)
    except SourceError as exc:
        return unreadable_result(path, str(exc), settings, where=exc)
    return lint_source(source, settings, rules)


def lint_text(text: str, path: str, settings: Settings, rules: RuleSet, project=None) -> FileResult:
    """Check text that is not (or not yet) on disk: stdin, an editor's buffer."""
    try:
        source = Source.from_text(text, path, notebook=path.endswith(".ipynb"))
    except SourceError as exc:
        return unreadable_result(path, str(exc), settings, where=exc)
    return lint_source(source, settings, rules, project=project)


def unreadable_result(path: str, message: str, settings: Settings, where: Optional[SourceError] = None) -> FileResult:
    """The result for a file that cannot be read as source: one EL001 diagnostic, at
    the place that cannot be read when `where` (the SourceError) knows it."""
    result = FileResult(path)
    if _UNREADABLE.code in settings.enabled_for(path):
        line, column = (where.line, where.column) if where is not None else (1, 1)
        lines = (where.line_text,) if where is not None and where.line_text is not None else ()
        result.diagnostics.append(Diagnostic(_UNREADABLE.code, _UNREADABLE.name, _UNREADABLE.severity,
                                             message, path, line, column, line, column, source_lines=lines))
    return result


def lint_source(source: Source, settings: Settings, rules: RuleSet, *, prefilter: bool = True,
                project=None, module: Optional[cst.Module] = None,
                print_memo: Optional[PrintMemo] = None, keep_tree: bool = False) -> FileResult:
    """`prefilter=False` parses every file (benchmarks compare both ways). Runs on a
    big stack: deeply nested code must give results, not crash the process.
    `project` (a `project_run.ProjectContext`) gives the file its view of the other
    modules of the run and asks for the file's own summary. `module`: the source's
    tree when the caller has it already (the editor splices changed statements into
    the previous tree), so it is not parsed again; `print_memo` keeps what was printed
    of its statements for the next version's tree (see spans.PrintMemo). `keep_tree`:
    the result holds the tree (`FileResult.tree`) for a caller that checks an edit of
    it next."""
    result = call_with_big_stack(_lint_source, source, settings, rules, prefilter, project, module, print_memo)
    if not keep_tree:
        result.tree = None
    return result


def _lint_source(source: Source, settings: Settings, rules: RuleSet, prefilter: bool, project=None,
                 parsed: Optional[cst.Module] = None, print_memo: Optional[PrintMemo] = None) -> FileResult:
    try:
        source.text.encode("utf-8")
    except UnicodeEncodeError as exc:  # e.g. a lone surrogate sent by an editor
        return unreadable_result(source.path, f"the text holds an invalid character at offset {exc.start} "
                                        "(an unpaired surrogate); it cannot be parsed", settings)
    result = FileResult(source.path, source=source)
    if skips_file(source.text):
        return result
    enabled = settings.enabled_for(source.path)
    selected = [r for r in rules.all() if r.code in enabled]
    want_syntax = _SYNTAX.code in enabled
    text = source.text
    if prefilter:
        selected = [r for r in selected if r.may_fire(text)]
    if not selected:
        # No selected rule can fire; only a syntax error could be reported, and a
        # module that others import (a package's `__init__` re-exporting a model
        # class) still owes them its summary.
        if project is not None and project.imported:
            module = _parse(source, text, result, want_syntax)
            if module is not None:
                result.summary = _summary(ModuleFacts(module, source.path, settings.patterns,
                                                      project=project.link(source.path)))
        elif want_syntax and not _compiles(text):
            _parse(source, text, result, want_syntax)
        return result
    module = parsed if parsed is not None else _parse(source, text, result, want_syntax)
    if module is None:
        return result
    result.tree = module
    link = project.link(source.path) if project is not None else None
    facts = ModuleFacts(module, source.path, settings.patterns, project=link)
    findings = []
    for rule_cls in selected:
        try:
            mark = len(link.assumptions) if link is not None else 0
            for finding in rule_cls().check(facts):
                # The assumptions made since the previous finding, about the code
                # around this one, are this one's.
                depends = link.assumptions_for(mark, facts.statement_order(finding.node)) if link is not None else ()
                mark = len(link.assumptions) if link is not None else 0
                findings.append((rule_cls, finding, depends))
        except RecursionError:
            result.errors.append(f"{source.path}: rule {rule_cls.code} gave up: the code nests too deeply")
        except Exception as exc:  # a rule bug must not stop the other rules or files
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            result.errors.append(f"{source.path}: internal error in rule {rule_cls.code}: {exc!r}\n{''.join(tb[-3:])}")
    if findings:
        result.diagnostics.extend(_diagnostics(source, module, findings, print_memo, facts))
    if project is not None:
        result.diagnostics = project.drop_overturned(result.diagnostics)
        if project.want_summary:
            result.summary = _summary(facts)
    result.diagnostics.sort(key=lambda d: d.sort_key)
    return result


def _summary(facts: ModuleFacts) -> Optional[dict]:
    try:
        return facts.summary()
    except RecursionError:
        return None  # too deep to summarise: importers resolve nothing from it


def _compiles(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def _parse(source: Source, text: str, result: FileResult, report: bool) -> Optional[cst.Module]:
    try:
        return parse_module(text)
    except cst.ParserSyntaxError as exc:
        if source.notebook is not None:
            return _parse_notebook_cells(source, result, report)
        if report:
            line, col, message = _error_position(text, exc)
            result.diagnostics.append(_syntax_diagnostic(source, line, col, message))
    except RecursionError:
        result.errors.append(f"{source.path}: the code nests too deeply to be parsed")
    return None


def _parse_notebook_cells(source: Source, result: FileResult, report: bool) -> Optional[cst.Module]:
    """Find the cells that do not parse, report them, and check the rest: a broken
    cell is blanked out (same number of lines) so positions stay put."""
    lines = source.text.split("\n")
    for span in source.cell_spans:
        cell_text = "\n".join(lines[span.first_line - 1: span.first_line - 1 + span.line_count]) + "\n"
        try:
            parse_module(cell_text)
        except cst.ParserSyntaxError as exc:
            if report:
                line, col, message = _error_position(cell_text, exc)
                result.diagnostics.append(_syntax_diagnostic(source, span.first_line + line - 1, col, message))
            for i in range(span.first_line - 1, span.first_line - 1 + span.line_count):
                lines[i] = ""
    try:
        return parse_module("\n".join(lines))
    except cst.ParserSyntaxError:
        return None


def _error_position(text: str, exc: cst.ParserSyntaxError) -> tuple[int, int, str]:
    """Where the error is: CPython's parser points where the fix goes (libcst often
    points at the next token, lines later); libcst's position when CPython accepts it."""
    try:
        compile(text, "<evallint>", "exec", dont_inherit=True, flags=ast.PyCF_ONLY_AST)
    except SyntaxError as err:
        if err.lineno:
            return err.lineno, max((err.offset or 1) - 1, 0), err.msg
    except (ValueError, RecursionError, MemoryError):
        pass
    return exc.raw_line, exc.raw_column, exc.message


def _syntax_diagnostic(source: Source, vline: int, col0: int, message: str) -> Diagnostic:
    cell, line = source.to_cell(vline)
    first = message.strip().splitlines()[0] if message.strip() else "invalid syntax"
    return Diagnostic(_SYNTAX.code, _SYNTAX.name, _SYNTAX.severity, f"Syntax error: {first}",
                      source.path, line, col0 + 1, line, col0 + 1, cell=cell,
                      source_lines=(source.line_text(line, cell),))


def _diagnostics(source: Source, module: cst.Module, findings, print_memo: Optional[PrintMemo] = None,
                 facts: Optional[ModuleFacts] = None) -> list[Diagnostic]:
    # One recording codegen pass gives the spans of the flagged nodes and of the
    # nodes that fixes replace; nothing else in the file pays for positions.
    wanted = [f.node for _, f, _ in findings]
    wanted += [c.old for _, f, _ in findings if f.fix is not None for c in f.fix.changes]
    spans = node_spans(module, wanted, print_memo)
    analysed = source.text if source.notebook is None else module.code
    index = LineIndex(analysed)
    printer = render
    if print_memo is not None and facts is not None:
        def top_of(node: cst.CSTNode) -> Optional[cst.CSTNode]:
            return _top_of(facts, node)

        def printer(module, new, old, indent):
            return print_memo.render(module, new, old, indent, top_of)
    out = []
    for rule_cls, finding, depends in findings:
        span = spans.get(id(finding.node))
        if span is None:
            continue
        start = syntactic_start(analysed, span[0], span[1], finding.node)
        (vline, col), (vend, end_col) = index.position(start), index.position(_trim_end(analysed, start, span[1]))
        cell, line = source.to_cell(vline)
        end_cell, end_line = source.to_cell(vend)
        if end_cell != cell:
            end_line, end_col = line, col
        context = _context_lines(source, cell, line, end_line)
        if is_suppressed([context[0], context[-1]], rule_cls.code, rule_cls.name):
            continue
        fix = _fix(source, module, finding, analysed, index, spans, printer) if finding.fix is not None else None
        out.append(Diagnostic(rule_cls.code, rule_cls.name, rule_cls.severity, finding.message,
                              source.path, line, col + 1, end_line, end_col + 1,
                              cell=cell, fix=fix, source_lines=context, depends_on=depends))
    return out


def _top_of(facts: ModuleFacts, node: cst.CSTNode) -> Optional[cst.CSTNode]:
    """The top-level statement holding a node that is one of the tree's statements,
    lines or blocks (a fix reuses them whole), None for any other node. The print
    memo keys those by identity; any answer is sound, a wrong None only prints more."""
    if isinstance(node, cst.SimpleStatementLine):
        stmt = facts.stmt(node.body[0]) if node.body else None
        found = stmt is not None and stmt.line_node is node
    elif isinstance(node, cst.IndentedBlock):
        first = node.body[0] if node.body else None
        if isinstance(first, cst.SimpleStatementLine):
            first = first.body[0] if first.body else None
        stmt = facts.stmt(first) if first is not None else None
        owner = stmt.parent.node if stmt is not None and stmt.parent is not None else None
        found = owner is not None and any(
            block is node for block in (getattr(owner, "body", None),
                                        getattr(getattr(owner, "orelse", None), "body", None),
                                        getattr(getattr(owner, "finalbody", None), "body", None)))
    else:
        stmt = facts.stmt(node)
        found = stmt is not None and stmt.node is node
    if not found:
        return None
    while stmt.parent is not None:
        stmt = stmt.parent
    return stmt.line_node if stmt.line_node is not None else stmt.node


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _whole_tokens(old: str, new: str, p: int, q: int) -> tuple[int, int]:
    """Widen a common-prefix/suffix trim so the edit never splits a word: a person
    reads `True` -> `False`, not `Tru` -> `Fals`."""
    def cut_inside(text: str, at: int) -> bool:
        return 0 < at < len(text) and _is_word(text[at - 1]) and _is_word(text[at])

    while p > 0 and (cut_inside(old, p) or cut_inside(new, p)):
        p -= 1
    while q > 0 and (cut_inside(old, len(old) - q) or cut_inside(new, len(new) - q)):
        q -= 1
    return p, q


def _common_prefix(a: str, b: str, limit: int) -> int:
    """Length of the common prefix of a and b, at most `limit` (slices compare in C:
    a fix that wraps a loop repeats hundreds of characters)."""
    lo, hi = 0, limit
    while lo < hi:   # a[:lo] == b[:lo] holds; find the largest such lo
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the common suffix of a and b, at most `limit`."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid: len(a) - lo] == b[len(b) - mid: len(b) - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _trim_end(text: str, start: int, end: int) -> int:
    """A span ends before its trailing whitespace and newline."""
    while end > start and text[end - 1] in " \t\r\n":
        end -= 1
    return end


def _context_lines(source: Source, cell, line: int, end_line: int) -> tuple[str, ...]:
    lines = [source.line_text(n, cell) for n in range(line, end_line + 1)]
    if len(lines) > _MAX_CONTEXT_LINES:
        lines = lines[: _MAX_CONTEXT_LINES - 1] + lines[-1:]
    return tuple(lines) or ("",)


def _fix(source: Source, module: cst.Module, finding, analysed: str, index: LineIndex, spans,
         printer=render) -> Optional[Fix]:
    edits = []
    for change in finding.fix.changes:
        span = spans.get(id(change.old))
        if span is None:
            return None
        start, end, indent = span
        try:
            new = printer(module, change.new, change.old, indent)
        except Exception:  # a replacement libcst cannot print is no fix
            return None
        old = analysed[start:end]
        if old == new:
            continue
        p = _common_prefix(old, new, min(len(old), len(new)))
        q = _common_suffix(old, new, min(len(old), len(new)) - p)
        p, q = _whole_tokens(old, new, p, q)
        (line, col), (end_line, end_col) = index.position(start + p), index.position(end - q)
        content = new[p: len(new) - q]
        if source.notebook is not None:
            # Edits stay inside one cell and never touch a masked (magic) line.
            if any(n in source.masked_lines for n in range(line, end_line + 1)):
                return None
            cell = source.cell_for_virtual_range(line, end_line)
            if cell is None:
                return None
            _, line = source.to_cell(line)
            _, end_line = source.to_cell(end_line)
            edits.append(Edit(line, col + 1, end_line, end_col + 1, content, cell=cell))
        else:
            edits.append(Edit(line, col + 1, end_line, end_col + 1, content))
    if not edits:
        return None
    return Fix(finding.fix.applicability, finding.fix.message, tuple(edits))
