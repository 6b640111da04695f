"""Incremental re-analysis of an editor buffer: only what a change can affect is linted.

The document is cut into top-level statements ("chunks", found with the fast `ast`
parser; a chunk owns the comment and blank lines above its statement). Chunks are
tied together by names: a chunk that binds a module-level name (or defines a function
or class, at any depth) is tied to every chunk that mentions that name, and chunks
that bind the same name are tied. Import-only chunks are read by everything and tie
nothing. A "part" is a connected group of chunks plus all import chunks: what the
facts layer can read about the code of a part lies inside it, so its findings are a
function of its text alone (and of the project summaries it read, which are checked
again on reuse).

Each part is linted on its own, as a small module of its chunks' lines packed
together (positions are mapped back chunk by chunk), with its offered fixes verified
inside it, and the result is kept under the part's text. A change re-lints only the
parts whose text changed. Whenever a part's finding or fix lands outside the part's
own chunks (on an import line, say), or anything is unusual (notebooks, syntax
errors, carriage returns), the whole document is linted from scratch instead.
"""
from __future__ import annotations

import ast
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

from .config import Settings
from .diagnostic import Diagnostic, Edit
from .engine import FileResult, lint_source
from .fixer import verify_offered_fixes
from .registry import ENGINE_RULES, RuleSet
from .source import Source
from .suppress import skips_file

_ENGINE_CODES = frozenset(r.code for r in ENGINE_RULES)


@dataclass(frozen=True)
class Chunk:
    """One top-level statement (or several on one line) with the lines above it."""

    first: int            # 1-based first line in the document
    last: int             # 1-based last line
    text: str             # its lines, each with its newline (the last one may lack it)
    hub: bool             # only imports: read by every part, ties none
    binds: frozenset      # module-level names it binds
    members: frozenset    # functions and classes it defines below the top level
    mentions: frozenset   # every name, attribute, keyword and identifier string in it


def split_chunks(text: str) -> Optional[list[Chunk]]:
    """The document's chunks, None when it cannot be cut soundly (syntax error, ...)."""
    if "\r" in text or text.startswith("\ufeff") or "\x00" in text:
        return None  # line numbering that `ast` and evallint might count differently
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not tree.body:
        return None
    groups: list[tuple[int, int, list[ast.stmt]]] = []
    for stmt in tree.body:
        start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", ())])
        end = stmt.end_lineno or stmt.lineno
        if groups and start <= groups[-1][1]:  # `a = 1; b = 2`: one line, one chunk
            first, last, stmts = groups[-1]
            groups[-1] = (first, max(last, end), stmts + [stmt])
        else:
            groups.append((start, end, [stmt]))
    offsets = _line_offsets(text)
    total = len(offsets) - 1       # lines as evallint counts them ("\n" ends a line)
    chunks = []
    previous_end = 0
    for i, (_, end, stmts) in enumerate(groups):
        first = previous_end + 1
        last = total if i == len(groups) - 1 else end
        body = text[offsets[first - 1]: offsets[last]]
        names = _Names()
        for stmt in stmts:
            names.visit(stmt, top=True)
        hub = all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in stmts)
        chunks.append(Chunk(first, last, body, hub, frozenset(names.binds), frozenset(names.members),
                            frozenset(names.mentions)))
        previous_end = last
    return chunks


def _line_offsets(text: str) -> list[int]:
    """Offset of the start of each line, and len(text) at the end."""
    offsets = [0]
    at = text.find("\n")
    while at != -1:
        offsets.append(at + 1)
        at = text.find("\n", at + 1)
    if offsets[-1] != len(text):
        offsets.append(len(text))
    return offsets


class _Names:
    """The names one chunk binds at module level, defines below it, and mentions."""

    def __init__(self) -> None:
        self.binds: set[str] = set()
        self.members: set[str] = set()
        self.mentions: set[str] = set()

    def visit(self, node: ast.AST, top: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            (self.binds if top else self.members).add(node.name)
            self.mentions.add(node.name)
            for child in ast.iter_child_nodes(node):
                # Decorators, defaults and bases run in the enclosing scope.
                inner = child in node.body
                self.visit(child, top and not inner)
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            top = False
        if isinstance(node, ast.Name):
            self.mentions.add(node.id)
            if top and isinstance(node.ctx, (ast.Store, ast.Del)):
                self.binds.add(node.id)
        elif isinstance(node, ast.Attribute):
            self.mentions.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            self.mentions.add(node.arg)
        elif isinstance(node, ast.arg):
            self.mentions.add(node.arg)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            self.mentions.update(node.names)
            self.binds.update(node.names)   # `global x` in a function binds a module name
        elif isinstance(node, ast.alias):
            local = node.asname or node.name.split(".")[0]
            self.mentions.add(local)
            self.mentions.update(node.name.split("."))
            if top:
                self.binds.add(local)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            self.mentions.add(node.name)
            if top:
                self.binds.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            self.mentions.add(node.name)
            if top:
                self.binds.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            self.mentions.add(node.rest)
            if top:
                self.binds.add(node.rest)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            self.mentions.add(node.value)  # getattr(model, "evaluate"), hparams keys
        for child in ast.iter_child_nodes(node):
            self.visit(child, top)


def group_parts(chunks: list[Chunk]) -> list[list[int]]:
    """Connected groups of non-import chunks (indexes, in document order)."""
    parent = list(range(len(chunks)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    binders: dict[str, list[int]] = {}
    definers: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        if c.hub:
            continue
        for name in c.binds:
            binders.setdefault(name, []).append(i)
        for name in c.members:
            if not (name.startswith("__") and name.endswith("__")):  # every class has __init__
                definers.setdefault(name, []).append(i)
    for i, c in enumerate(chunks):
        if c.hub:
            continue
        for name in c.mentions | c.binds:
            for j in binders.get(name, ()):
                union(i, j)
            for j in definers.get(name, ()):
                union(i, j)
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(chunks):
        if not c.hub:
            groups.setdefault(find(i), []).append(i)
    return list(groups.values())


@dataclass
class _Part:
    """One part's lint, in the coordinates of the part's own packed text."""

    diagnostics: list[Diagnostic]
    errors: list[str]
    summaries: dict              # module key -> the summary it read (checked on reuse)


class _RecordingContext:
    """The editor's project context for one part: it records which summaries the
    part read, and leaves dropping overturned findings to the whole document."""

    want_summary = False
    imported = False

    def __init__(self, inner) -> None:
        self.inner = inner
        self.links: list = []

    def link(self, path: str):
        found = self.inner.link(path)
        self.links.append(found)
        return found

    def drop_overturned(self, diagnostics: list) -> list:
        return diagnostics

    def summaries_read(self) -> dict:
        keys = {k for link in self.links for k in link.read}
        return {k: self.inner.workspace.summary(self.inner.settings, k) for k in sorted(keys)}


class _NotLocal(Exception):
    """A part's finding or fix reaches outside the part's own chunks."""


@dataclass
class LintStats:
    """What the incremental linter did, cumulatively (for tests and the benchmark)."""

    full_lints: int = 0
    parts_linted: int = 0
    parts_reused: int = 0
    chunk_lines_linted: int = 0     # lines of the parts linted (own chunks, not imports)
    last: dict = field(default_factory=dict)   # the last lint's breakdown, in ms and counts

    def as_dict(self) -> dict:
        return {"full_lints": self.full_lints, "parts_linted": self.parts_linted,
                "parts_reused": self.parts_reused, "chunk_lines_linted": self.chunk_lines_linted,
                "last": dict(self.last)}


class IncrementalLinter:
    """Lints successive versions of one document, re-linting only changed parts."""

    def __init__(self, path: str, stats: LintStats) -> None:
        self.path = path
        self.stats = stats
        self._parts: dict[tuple, _Part] = {}
        self._settings: Optional[Settings] = None
        self._lock = threading.Lock()

    def lint(self, text: str, settings: Settings, rules: RuleSet, project=None,
             full: Optional[Callable[[], FileResult]] = None) -> FileResult:
        """The document's result, equal to a from-scratch check with verified fixes.
        `full` lints from scratch (the fallback)."""
        with self._lock:
            t0 = time.perf_counter()
            result = self._incremental(text, settings, rules, project, t0)
            if result is None:
                self._parts.clear()
                self.stats.full_lints += 1
                result = full()
                self.stats.last = {"mode": "full", "total_ms": _ms(t0)}
            return result

    def _incremental(self, text: str, settings: Settings, rules: RuleSet, project, t0: float) -> Optional[FileResult]:
        if skips_file(text):
            return None
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return None
        chunks = split_chunks(text)
        if chunks is None:
            return None
        groups = group_parts(chunks)
        t_split = time.perf_counter()
        if settings is not self._settings:
            self._parts.clear()
            self._settings = settings
        enabled = settings.enabled_for(self.path)
        # The prefilter reads the whole document, as a check of it would.
        codes = frozenset(c for c in enabled if c in _ENGINE_CODES or
                          (rules.get(c) is not None and rules.get(c).may_fire(text)))
        narrow = replace(settings, enabled=codes, per_file_ignores=())
        hubs = [i for i, c in enumerate(chunks) if c.hub]
        kept: dict[tuple, _Part] = {}
        diagnostics: list[Diagnostic] = []
        errors: list[str] = []
        linted = reused = lines = 0
        for group in groups:
            members = sorted(hubs + group)
            key = (codes,) + tuple(chunks[i].text for i in members)
            part = kept.get(key) or self._parts.get(key)
            if part is not None and project is not None and not self._summaries_hold(part, project):
                part = None
            if part is None:
                part = self._lint_part(chunks, members, narrow, rules, project)
                linted += 1
                lines += sum(chunks[i].last - chunks[i].first + 1 for i in group)
            else:
                reused += 1
            kept[key] = part
            try:
                diagnostics += _to_document(part.diagnostics, chunks, members, set(group))
            except _NotLocal:
                return None
            errors += part.errors
        t_parts = time.perf_counter()
        self._parts = kept
        if project is not None:
            diagnostics = project.drop_overturned(diagnostics)
        diagnostics.sort(key=lambda d: d.sort_key)
        self.stats.parts_linted += linted
        self.stats.parts_reused += reused
        self.stats.chunk_lines_linted += lines
        self.stats.last = {"mode": "incremental", "chunks": len(chunks), "parts": len(groups),
                           "parts_linted": linted, "parts_reused": reused, "lines_linted": lines,
                           "split_ms": round((t_split - t0) * 1000, 2),
                           "parts_ms": round((t_parts - t_split) * 1000, 2), "total_ms": _ms(t0)}
        result = FileResult(self.path, diagnostics=diagnostics, source=Source(path=self.path, text=text),
                            errors=_unique(errors))
        return result

    def _summaries_hold(self, part: _Part, project) -> bool:
        return all(project.workspace.summary(project.settings, k) == v for k, v in part.summaries.items())

    def _lint_part(self, chunks: list[Chunk], members: list[int], settings: Settings, rules: RuleSet,
                   project) -> _Part:
        source = Source(path=self.path, text="".join(chunks[i].text for i in members))
        recording = _RecordingContext(project) if project is not None else None
        result = lint_source(source, settings, rules, project=recording)
        verify_offered_fixes(source, result, settings, rules)  # no fix that would not hold
        summaries = recording.summaries_read() if recording is not None else {}
        return _Part(list(result.diagnostics), list(result.errors), summaries)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _to_document(diagnostics: list[Diagnostic], chunks: list[Chunk], members: list[int],
                 own: set[int]) -> list[Diagnostic]:
    """Part coordinates -> document coordinates; _NotLocal when a position falls on a
    chunk that is not the part's own (an import line) or is an engine finding."""
    starts = []   # (first packed line, chunk index)
    line = 1
    for i in members:
        starts.append((line, i))
        line += chunks[i].last - chunks[i].first + 1

    def where(packed: int) -> tuple[int, int]:
        for start, i in reversed(starts):
            if packed >= start:
                return i, chunks[i].first + packed - start
        raise _NotLocal

    def move(first: int, last: int) -> tuple[int, int]:
        (a, doc_first), (b, doc_last) = where(first), where(last)
        if a != b or a not in own:
            raise _NotLocal
        return doc_first, doc_last

    out = []
    for d in diagnostics:
        if d.code in _ENGINE_CODES:
            raise _NotLocal
        line, end_line = move(d.line, d.end_line)
        fix = d.fix
        if fix is not None:
            edits = []
            for e in fix.edits:
                a, b = move(e.line, e.end_line)
                edits.append(Edit(a, e.column, b, e.end_column, e.content, e.cell))
            fix = replace(fix, edits=tuple(edits))
        out.append(replace(d, line=line, end_line=end_line, fix=fix))
    return out
