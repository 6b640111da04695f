"""The files of one run form a project: which file imports which, in what order to
check them, and what each file's check may read of the others.

A text scan of the import lines (no parse) gives the graph. Files are checked in
waves, imported modules first, so a module's summary exists when its importers are
checked: each file is parsed once. Only files that name an ML framework, and the
modules of the run they reach through imports, get a project view; the others cost
nothing but the scan. Findings of a
helper whose model comes from callers in other modules are checked against those
callers' summaries once every wave is done (`facts.project.overturned`).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .config import Settings, relative_posix
from .facts import ML_TOKENS
from .facts.project import ModuleResolver, ProjectLink, caller_index, overturned, project_root

_FROM = re.compile(r"[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(.*)")
_IMPORT = re.compile(r"[ \t]*import[ \t]+(.*)")


def module_key(path: str, root: Path) -> str:
    return relative_posix(path, root)


@dataclass
class ProjectContext:
    """What one file's check sees of the project (picklable for worker processes)."""

    key: str
    roots: tuple[str, ...]
    root: str
    known: frozenset[str]
    summaries: dict[str, dict] = field(default_factory=dict)  # the modules it may read
    want_summary: bool = True
    imported: bool = False           # another file of the run imports this one
    callers: Optional[dict] = None   # the callers' index, when already complete

    def link(self, path: str) -> ProjectLink:
        root = Path(self.root)
        resolver = ModuleResolver([Path(r) for r in self.roots], lambda p: module_key(p, root),
                                  self.known.__contains__)
        return ProjectLink(self.key, path, resolver, self.summaries.get)

    def fingerprint(self) -> str:
        """Covers every summary this file's check can read (for the cache key)."""
        text = json.dumps(sorted(self.summaries.items()), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def drop_overturned(self, diagnostics: list) -> list:
        if self.callers is None:
            return diagnostics
        return [d for d in diagnostics if not (d.depends_on and overturned(d.depends_on, self.callers))]


@dataclass
class ProjectPlan:
    files: list[str]
    keys: list[str]
    deps: list[set[int]]        # the files of the run each file imports
    waves: list[list[int]]
    roots: tuple[str, ...]
    root: str
    imported: list[bool] = field(default_factory=list)  # imported by another file of the run

    def context(self, i: int, summaries: dict[str, dict], callers: Optional[dict] = None) -> Optional[ProjectContext]:
        if not self.deps[i] and not self.imported[i]:
            return None
        reach = self._closure(i)
        return ProjectContext(self.keys[i], self.roots, self.root, frozenset(self.keys),
                              {self.keys[j]: summaries[self.keys[j]] for j in sorted(reach) if self.keys[j] in summaries},
                              want_summary=True, imported=self.imported[i], callers=callers)

    def _closure(self, i: int) -> set[int]:
        seen, todo = set(), list(self.deps[i])
        while todo:
            j = todo.pop()
            if j in seen or j == i:
                continue
            seen.add(j)
            todo.extend(self.deps[j])
        return seen


def plan_project(files: list[str], settings: Settings) -> Optional[ProjectPlan]:
    """None when no file of the run imports another one."""
    if len(files) < 2:
        return None
    root = settings.root
    keys = [module_key(f, root) for f in files]
    index = {k: i for i, k in enumerate(keys)}
    roots = {str(root)}
    for f in files:
        r = project_root(Path(f))
        if r is not None:
            roots.add(str(r))
    ordered_roots = tuple(sorted(roots, key=len, reverse=True))
    resolver = ModuleResolver([Path(r) for r in ordered_roots], lambda p: module_key(p, root), index.__contains__)
    deps: list[set[int]] = []
    ml: list[bool] = []
    for i, f in enumerate(files):
        found = set()
        imports, is_ml = _imports(f)
        for module, level in imports:
            key = resolver.resolve(f, module, level)
            if key is not None and index[key] != i:
                found.add(index[key])
        deps.append(found)
        ml.append(is_ml)
    # Only ML files and the modules they reach matter: a tree of plain Python
    # (the standard library) gets no project view and costs only this scan.
    needed = _reachable([i for i in range(len(files)) if ml[i] and deps[i]], deps)
    deps = [d if i in needed else set() for i, d in enumerate(deps)]
    if not any(deps):
        return None
    imported = [False] * len(files)
    for found in deps:
        for j in found:
            imported[j] = True
    return ProjectPlan(files, keys, deps, _waves(deps), ordered_roots, str(root), imported)


def _reachable(starts: list[int], deps: list[set[int]]) -> set[int]:
    seen, todo = set(starts), list(starts)
    while todo:
        for j in deps[todo.pop()]:
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return seen


def _imports(path: str) -> tuple[list[tuple[str, int]], bool]:
    """(module, level) pairs named by the file's import lines (`from pkg import a, b`
    also names `pkg.a` and `pkg.b`: they may be submodules), and whether the file
    names an ML framework at all."""
    try:
        raw = Path(path).read_bytes().decode("utf-8", "replace")
    except OSError:
        return [], False
    if path.endswith(".ipynb"):
        try:
            cells = json.loads(raw).get("cells", [])
            raw = "\n".join("".join(c.get("source", "")) if isinstance(c.get("source"), list) else str(c.get("source", ""))
                            for c in cells if isinstance(c, dict) and c.get("cell_type") == "code")
        except (ValueError, AttributeError, TypeError):
            return [], False
    out: list[tuple[str, int]] = []
    for line in _lines_with(raw, "import"):
        m = _FROM.fullmatch(line)
        if m is not None:
            level, module, names = len(m.group(1)), m.group(2), m.group(3)
            out.append((module, level))
            for name in re.split(r"[,\s()]+", names.split("#")[0]):
                if name and name not in ("as", "*", "\\") and name.isidentifier():
                    out.append((f"{module}.{name}" if module else name, level))
            continue
        m = _IMPORT.fullmatch(line)
        if m is not None:
            for part in m.group(1).split("#")[0].split(","):
                name = part.strip().split(" as ")[0].strip()
                pieces = name.split(".")
                for n in range(1, len(pieces) + 1):
                    out.append((".".join(pieces[:n]), 0))
    return out, any(token in raw for token in ML_TOKENS)


def _lines_with(text: str, word: str):
    """The lines of `text` that contain `word`, without their newline: a substring
    search finds the few import lines of a file far faster than a line-anchored
    regular expression tried at every line."""
    at = text.find(word)
    while at != -1:
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        if end == -1:
            end = len(text)
        yield text[start:end]
        at = text.find(word, end)


def _waves(deps: list[set[int]]) -> list[list[int]]:
    """Imported files first; a cycle is checked in one wave (its members do not see
    each other's summaries)."""
    done: set[int] = set()
    remaining = set(range(len(deps)))
    waves = []
    while remaining:
        ready = sorted(i for i in remaining if deps[i] <= done)
        if not ready:
            fewest = min(len(deps[i] - done) for i in remaining)
            ready = sorted(i for i in remaining if len(deps[i] - done) == fewest)
        waves.append(ready)
        done.update(ready)
        remaining.difference_update(ready)
    return waves


def drop_overturned(outcomes: list, summaries: dict[str, dict]) -> None:
    """Once every module is summarised: drop the findings whose assumptions about
    callers in other modules those callers contradict."""
    callers = caller_index(summaries)
    if not callers:
        return
    for out in outcomes:
        out.diagnostics = [d for d in out.diagnostics
                           if not (d.depends_on and overturned(d.depends_on, callers))]
