"""Incremental re-analysis of an editor buffer: only what a change can affect is linted.

The document is cut into top-level statements ("chunks", found with the fast `ast`
parser; a chunk owns the comment and blank lines above its statement). Chunks are
tied together by names: the facts layer relates code by name across scopes (a loader
bound at top level, a function called from the epoch loop, a `model` trained in one
function and evaluated in another), so two chunks that share any identifier are tied,
and so is a chunk that reads an attribute another one defines. Import-only chunks are
read by everything and tie nothing. A "part" is a connected group of chunks plus all
import chunks: what the facts layer can read about the code of a part lies inside it,
so its findings are a function of its text alone (and of the project summaries it
read, which are checked again on reuse).

Each part is linted on its own, as a small module of its chunks' lines packed
together (positions are mapped back chunk by chunk), and the result is kept under the
part's text; its offered fixes are verified inside it when asked (`Linted.verify`),
once per part text. A change re-lints only the parts whose text changed, and an edit
re-cuts only the chunks its lines touch. Whenever a part's finding or fix lands
outside the part's own chunks (on an import line, say), or anything is unusual
(notebooks, syntax errors, carriage returns), the whole document is linted from
scratch instead.
"""
from __future__ import annotations

import ast
import builtins
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import libcst as cst

from .config import Settings
from .deepstack import call_with_big_stack
from .diagnostic import Diagnostic, Edit
from .engine import FileResult, lint_source
from .fastparse import parse_module
from .fixer import verify_offered_fixes
from .registry import ENGINE_RULES, RuleSet
from .source import Source
from .spans import PrintMemo
from .splice import line_offsets, splice
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
    names: frozenset      # every other identifier in it (any scope), `self.x` included
    attributes: frozenset # the attribute names it reads or writes


def split_chunks(text: str) -> Optional[list[Chunk]]:
    """The document's chunks, None when it cannot be cut soundly (syntax error, ...)."""
    if not _plain(text):
        return None
    return _split(text, 0)


def resplit(old_text: str, old_chunks: list[Chunk], text: str) -> Optional[list[Chunk]]:
    """The chunks of `text`, an edit of `old_text`: the chunks the changed lines touch
    are cut again (with `ast`, from their lines alone); those before them are kept and
    those after them move. None when that cannot be done (split the whole text)."""
    if not _plain(text):
        return None
    old_lines, new_lines = old_text.split("\n"), text.split("\n")
    shortest = min(len(old_lines), len(new_lines))
    p = 0
    while p < shortest and old_lines[p] == new_lines[p]:
        p += 1
    q = 0
    while q < shortest - p and old_lines[-1 - q] == new_lines[-1 - q]:
        q += 1
    if p == len(old_lines) == len(new_lines):
        return old_chunks
    total_old = old_chunks[-1].last
    # Lines p+1 .. len-q changed; take one more line on each side, so that an insertion
    # between two chunks re-cuts both.
    lo = max(1, min(p, total_old))
    hi = min(total_old, max(len(old_lines) - q + 1, lo))
    a = next((i for i, c in enumerate(old_chunks) if c.last >= lo), None)
    b = next((i for i in range(len(old_chunks) - 1, -1, -1) if old_chunks[i].first <= hi), None)
    if a is None or b is None or a > b:
        return None
    offsets = line_offsets(text)
    total = len(offsets) - 1
    delta = len(new_lines) - len(old_lines)
    first = old_chunks[a].first
    last = total if b == len(old_chunks) - 1 else old_chunks[b].last + delta
    if not 1 <= first <= last <= total:
        return None
    middle = _split(text[offsets[first - 1]: offsets[last]], first - 1)
    if middle is None:
        return None  # the edited lines alone are no statements (an indent, an open bracket)
    after = [replace(c, first=c.first + delta, last=c.last + delta) for c in old_chunks[b + 1:]]
    return old_chunks[:a] + middle + after


def _plain(text: str) -> bool:
    # Line numbering that `ast` and evallint might count differently: not cut.
    return "\r" not in text and not text.startswith("\ufeff") and "\x00" not in text


def _split(text: str, base: int) -> Optional[list[Chunk]]:
    """Chunks of a run of whole statements, numbered from line base + 1."""
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
    offsets = line_offsets(text)
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
        chunks.append(Chunk(base + first, base + last, body, hub, frozenset(names.binds),
                            frozenset(names.names), frozenset(names.attributes)))
        previous_end = last
    return chunks


class _Names:
    """The identifiers of one chunk: the facts layer relates code by name, across
    scopes too (a `model` trained in one function is the `model` evaluated in
    another), so every name a chunk mentions counts, not only module-level ones."""

    def __init__(self) -> None:
        self.binds: set[str] = set()      # module-level names it binds
        self.names: set[str] = set()      # every other identifier it mentions or defines
        self.attributes: set[str] = set() # `x.attr` attribute names

    def visit(self, node: ast.AST, top: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            (self.binds if top else self.names).add(node.name)
            for child in ast.iter_child_nodes(node):
                # Decorators, defaults and bases run in the enclosing scope.
                self.visit(child, top and not any(child is b for b in node.body))
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            top = False
        if isinstance(node, ast.Name):
            if top and isinstance(node.ctx, (ast.Store, ast.Del)):
                self.binds.add(node.id)
            else:
                self.names.add(node.id)
        elif isinstance(node, ast.Attribute):
            self.attributes.add(node.attr)
            if isinstance(node.value, ast.Name) and node.value.id in _SELF:
                self.names.add(f"self.{node.attr}")   # `self.model` in two classes
        elif isinstance(node, ast.keyword) and node.arg:
            self.names.add(node.arg)
        elif isinstance(node, ast.arg):
            self.names.add(node.arg)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            self.binds.update(node.names)   # `global x` in a function binds a module name
        elif isinstance(node, ast.alias):
            local = node.asname or node.name.split(".")[0]
            (self.binds if top else self.names).add(local)
            self.names.update(node.name.split("."))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            (self.binds if top else self.names).add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            (self.binds if top else self.names).add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            (self.binds if top else self.names).add(node.rest)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            self.names.add(node.value)  # getattr(model, "evaluate"), hparams keys
        for child in ast.iter_child_nodes(node):
            self.visit(child, top)


_SELF = frozenset({"self", "cls"})
_BUILTINS = frozenset(dir(builtins))


def group_parts(chunks: list[Chunk]) -> list[list[int]]:
    """Connected groups of non-import chunks (indexes, in document order): chunks tie
    when they share an identifier, or when one reads an attribute that the other
    defines or binds. Names that only imports bind (`torch`, `nn`), builtins and
    `self` tie nothing: every chunk reads them, and an import changes the imports."""
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

    own = [i for i, c in enumerate(chunks) if not c.hub]
    bound = set().union(*(chunks[i].binds for i in own)) if own else set()
    imported = set().union(*(c.binds for c in chunks if c.hub)) - bound
    quiet = (imported | _BUILTINS | _SELF) - bound
    holder: dict[str, int] = {}
    for i in own:
        c = chunks[i]
        for name in c.binds | c.names:
            if name in quiet:
                continue
            j = holder.setdefault(name, i)
            if j != i:
                union(i, j)
    for i in own:
        for name in chunks[i].attributes:
            j = holder.get(name)
            if j is not None and name not in quiet:
                union(i, j)
    groups: dict[int, list[int]] = {}
    for i in own:
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


@dataclass
class _Part:
    """One part's lint, in the coordinates of the part's own packed text."""

    source: Source
    settings: Settings
    diagnostics: list[Diagnostic]
    errors: list[str]
    summaries: dict              # module key -> the summary it read (checked on reuse)
    module: Optional[cst.Module] = field(default=None, repr=False)   # its tree, to splice into
    texts: tuple = ()            # its chunks' texts, in order
    verified: Optional[list[Diagnostic]] = None   # with the fixes that hold, once verified
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not any(d.fix is not None for d in self.diagnostics):
            self.verified = self.diagnostics  # nothing to verify

    def verify(self, rules: RuleSet) -> list[Diagnostic]:
        """Apply the part's fixes once, re-check the part, withdraw the fixes that do
        not hold (see fixer.verify_offered_fixes); done once per part text."""
        with self.lock:
            if self.verified is None:
                result = FileResult(self.source.path, diagnostics=list(self.diagnostics), source=self.source)
                verify_offered_fixes(self.source, result, self.settings, rules)
                self.verified = result.diagnostics
            return self.verified


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
    parts_verified: int = 0
    parts_spliced: int = 0          # parts whose tree reused the previous one's statements
    chunk_lines_linted: int = 0     # lines of the parts linted (own chunks, not imports)
    last: dict = field(default_factory=dict)   # the last lint's breakdown, in ms and counts

    def as_dict(self) -> dict:
        return {"full_lints": self.full_lints, "parts_linted": self.parts_linted,
                "parts_reused": self.parts_reused, "parts_verified": self.parts_verified,
                "parts_spliced": self.parts_spliced,
                "chunk_lines_linted": self.chunk_lines_linted, "last": dict(self.last)}


@dataclass
class Linted:
    """One version's result: the findings with the fixes as the rules offer them, and
    a way to get them with only the fixes that hold (`verified`, run on demand)."""

    result: FileResult
    verify: Callable[[], list[Diagnostic]]


class IncrementalLinter:
    """Lints successive versions of one document, re-linting only changed parts."""

    def __init__(self, path: str, stats: LintStats) -> None:
        self.path = path
        self.stats = stats
        self._parts: dict[tuple, _Part] = {}
        self._settings: Optional[Settings] = None
        self._text: Optional[str] = None          # the last version cut into chunks
        self._chunks: Optional[list[Chunk]] = None
        self._printed = PrintMemo()   # what was printed of the statements the next trees reuse
        self._lock = threading.Lock()

    def lint(self, text: str, settings: Settings, rules: RuleSet, project=None,
             full: Optional[Callable[[], FileResult]] = None) -> Linted:
        """The document's findings, equal to a from-scratch check's (fixes verified
        by `Linted.verify`). `full` lints from scratch (the fallback)."""
        with self._lock:
            t0 = time.perf_counter()
            linted = self._incremental(text, settings, rules, project, t0)
            if linted is None:
                self._parts.clear()
                self._printed.keep(())
                self.stats.full_lints += 1
                result = full()
                self.stats.last = {"mode": "full", "total_ms": _ms(t0)}
                linted = self.whole(result, settings, rules)
            return linted

    @staticmethod
    def whole(result: FileResult, settings: Settings, rules: RuleSet) -> Linted:
        """A from-scratch result, its fixes verified on demand."""
        return Linted(result, _verify_whole(result, settings, rules))

    def _incremental(self, text: str, settings: Settings, rules: RuleSet, project, t0: float) -> Optional[Linted]:
        if self.path.endswith(".ipynb") or skips_file(text):
            return None  # a notebook is linted cell by cell, from scratch
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return None
        chunks = None
        if self._chunks is not None:
            chunks = resplit(self._text, self._chunks, text)
        if chunks is None:
            chunks = split_chunks(text)
        self._text, self._chunks = (text, chunks) if chunks is not None else (None, None)
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
        placed: list[tuple[_Part, Callable]] = []   # each part and its map to the document
        diagnostics: list[Diagnostic] = []
        errors: list[str] = []
        linted = reused = lines = 0
        spliced = self.stats.parts_spliced
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
            place = _placement(chunks, members, set(group))
            try:
                diagnostics += place(part.diagnostics)
            except _NotLocal:
                return None
            placed.append((part, place))
            errors += part.errors
        t_parts = time.perf_counter()
        self._parts = kept
        self._printed.keep(s for part in kept.values() if part.module is not None for s in part.module.body)
        finish = (lambda ds: project.drop_overturned(ds)) if project is not None else (lambda ds: ds)
        diagnostics = sorted(finish(diagnostics), key=lambda d: d.sort_key)
        self.stats.parts_linted += linted
        self.stats.parts_reused += reused
        self.stats.chunk_lines_linted += lines
        self.stats.last = {"mode": "incremental", "chunks": len(chunks), "parts": len(groups),
                           "parts_linted": linted, "parts_reused": reused, "lines_linted": lines,
                           "parts_spliced": self.stats.parts_spliced - spliced,
                           "split_ms": round((t_split - t0) * 1000, 2),
                           "parts_ms": round((t_parts - t_split) * 1000, 2), "total_ms": _ms(t0)}
        result = FileResult(self.path, diagnostics=diagnostics, source=Source(path=self.path, text=text),
                            errors=_unique(errors))

        def verify() -> list[Diagnostic]:
            out = []
            for part, place in placed:
                if part.verified is None:
                    self.stats.parts_verified += 1
                out += place(part.verify(rules))
            return sorted(finish(out), key=lambda d: d.sort_key)

        return Linted(result, verify)

    def _summaries_hold(self, part: _Part, project) -> bool:
        return all(project.workspace.summary(project.settings, k) == v for k, v in part.summaries.items())

    def _lint_part(self, chunks: list[Chunk], members: list[int], settings: Settings, rules: RuleSet,
                   project) -> _Part:
        texts = tuple(chunks[i].text for i in members)
        source = Source(path=self.path, text="".join(texts))
        module = self._spliced(texts)
        if module is None:
            try:
                module = call_with_big_stack(parse_module, source.text)
            except (cst.ParserSyntaxError, RecursionError):
                module = None  # the engine parses it again and says why
        recording = _RecordingContext(project) if project is not None else None
        result = lint_source(source, settings, rules, project=recording, module=module, print_memo=self._printed)
        summaries = recording.summaries_read() if recording is not None else {}
        return _Part(source, settings, list(result.diagnostics), list(result.errors), summaries, module, texts)

    def _spliced(self, texts: tuple) -> Optional[cst.Module]:
        """The part's tree from the previous version's most similar part, re-parsing
        only its changed statements (see splice); None when none fits."""
        def shared(old: tuple) -> int:
            p = next((i for i, (a, b) in enumerate(zip(old, texts)) if a != b), min(len(old), len(texts)))
            q = next((i for i, (a, b) in enumerate(zip(reversed(old), reversed(texts))) if a != b),
                     min(len(old), len(texts)))
            return p + q
        candidates = [part for part in self._parts.values() if part.module is not None]
        if not candidates:
            return None
        best = max(candidates, key=lambda part: shared(part.texts))
        if shared(best.texts) == 0:
            return None
        spliced = splice(best.module, best.texts, texts)
        if spliced is not None:
            self.stats.parts_spliced += 1
        return spliced


def _verify_whole(result: FileResult, settings: Settings, rules: RuleSet) -> Callable[[], list[Diagnostic]]:
    """Verification for a from-scratch result: once, on demand."""
    done: list = []
    lock = threading.Lock()

    def verify() -> list[Diagnostic]:
        with lock:
            if not done:
                copy = FileResult(result.path, diagnostics=list(result.diagnostics), source=result.source)
                if result.source is not None:
                    verify_offered_fixes(result.source, copy, settings, rules)
                done.append(sorted(copy.diagnostics, key=lambda d: d.sort_key))
            return done[0]

    return verify


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _placement(chunks: list[Chunk], members: list[int], own: set[int]) -> Callable[[list[Diagnostic]], list[Diagnostic]]:
    """Part coordinates -> document coordinates. Raises _NotLocal when a position falls
    on a chunk that is not the part's own (an import line), or for an engine finding."""
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

    def place(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
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

    return place
