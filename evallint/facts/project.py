"""The project view: what one module sees of the other modules of the checked tree.

Every module of a run that other modules import (or that imports them) yields a small
JSON summary (`summary.summarize`). A `ProjectLink` answers a module's questions about
its imports from those summaries: is `models.Net` a torch module with dropout or
batch-norm, does `utils.prepare(model)` switch the model's mode, what does
`build_model()` return. It records which summaries it read (a cache key must cover
them) and, for a helper whose model or gradient state comes only from callers in
other modules, the assumption the module's own analysis made ("no caller switched
`model` to eval mode"); the run checks those assumptions against the callers'
summaries once every module is summarised (`overturned`).

Nothing here parses: summaries come from a provider (the runner's table, the
language server's lazy workspace index).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import libcst as cst

from .exprs import dotted

# Assumption kinds: the question, and the callers' answer that makes rules quiet.
EVAL, NO_GRAD, SENSITIVE = "eval", "no_grad", "sensitive"
_MAX_HOPS = 6  # re-export chains followed


def assumption_key(kind: str, module: str, function: str, param: Optional[str]) -> str:
    return f"{kind}|{module}|{function}|{param or ''}"


def parse_assumption(key: str) -> tuple[str, str, str, str]:
    kind, module, function, param = key.split("|", 3)
    return kind, module, function, param


class ModuleResolver:
    """Dotted module names -> files of the checked tree (module keys).

    Absolute imports are looked up next to the importing file (a script's folder is
    on `sys.path`), then under each root (the checked folders and the project root);
    relative imports against the importing file's package. Only files accepted by
    `known` count: the files of the run, or the workspace's files."""

    def __init__(self, roots: Iterable[Path], key: Callable[[str], str], known: Callable[[str], bool]) -> None:
        self.roots = [os.path.abspath(r) for r in roots]
        self.key = key
        self.known = known
        self._memo: dict[tuple, Optional[str]] = {}
        self._is_file: dict[str, bool] = {}
        self._folders: dict[str, str] = {}

    def resolve(self, from_path: str, module: str, level: int = 0) -> Optional[str]:
        folder = self._folders.get(from_path)
        if folder is None:
            folder = self._folders[from_path] = os.path.dirname(os.path.abspath(from_path))
        memo_key = (folder, module, level)
        if memo_key not in self._memo:
            self._memo[memo_key] = self._resolve(folder, module, level)
        return self._memo[memo_key]

    def _resolve(self, folder: str, module: str, level: int) -> Optional[str]:
        parts = [p for p in module.split(".") if p]
        if level:
            for _ in range(level - 1):
                folder = os.path.dirname(folder)
            return self._file(folder, parts)
        if not parts:
            return None
        for base in (folder, *self.roots):
            found = self._file(base, parts)
            if found is not None:
                return found
        return None

    def _file(self, base: str, parts: list[str]) -> Optional[str]:
        target = os.path.join(base, *parts)
        for candidate in ((target + ".py") if parts else None, os.path.join(target, "__init__.py")):
            if candidate is not None and self._exists(candidate):
                key = self.key(candidate)
                if self.known(key):
                    return key
        return None

    def _exists(self, path: str) -> bool:
        found = self._is_file.get(path)
        if found is None:
            found = self._is_file[path] = os.path.isfile(path)
        return found


_ROOT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def project_root(path: Path, _memo: dict = {}) -> Optional[Path]:  # noqa: B006 - a per-process memo
    """The nearest folder above `path` with pyproject.toml, setup.py, setup.cfg or .git."""
    folder = os.path.dirname(os.path.abspath(path))
    walked = []
    found: Optional[str] = None
    while True:
        if folder in _memo:
            found = _memo[folder]
            break
        walked.append(folder)
        if any(os.path.exists(os.path.join(folder, m)) for m in _ROOT_MARKERS):
            found = folder
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for w in walked:
        _memo[w] = found
    return Path(found) if found is not None else None


@dataclass
class ProjectLink:
    """One module's view of the project."""

    module: str                                   # this module's key
    path: str                                     # this module's path (as checked)
    resolver: ModuleResolver
    summaries: Callable[[str], Optional[dict]]    # module key -> summary, None if unknown
    read: set[str] = field(default_factory=set)   # module keys whose summaries were read
    assumptions: list[str] = field(default_factory=list)
    # The statement the current question is about, and for each assumption the
    # statement range it was made for: a finding takes the ones around its node.
    asking: Optional[object] = None
    spans: list[tuple[int, int]] = field(default_factory=list)
    _relative: Optional[dict] = None
    _stars: Optional[list] = None

    # Imports of this module that `ModuleFacts.aliases` does not cover ---------------
    def bind_imports(self, statements) -> None:
        """Relative imports (`from .models import Net`) and star imports."""
        relative: dict[str, tuple[int, str, Optional[str]]] = {}
        stars: list[tuple[int, str]] = []
        for stmt in statements:
            node = stmt.node
            if not isinstance(node, cst.ImportFrom):
                continue
            level = len(node.relative)
            module = dotted(node.module) if node.module is not None else ""
            if module is None:
                continue
            if isinstance(node.names, cst.ImportStar):
                stars.append((level, module))
                continue
            if not level:
                continue
            for alias in node.names:
                name = dotted(alias.name)
                if name is None:
                    continue
                local = alias.asname.name.value if (alias.asname and isinstance(alias.asname.name, cst.Name)) else name
                relative[local] = (level, module, name)
        self._relative, self._stars = relative, stars

    # Summaries ------------------------------------------------------------------------
    def summary(self, key: Optional[str]) -> Optional[dict]:
        if key is None or key == self.module:
            return None
        found = self.summaries(key)
        if found is not None:
            self.read.add(key)
        return found

    def module_key(self, module: str, level: int = 0) -> Optional[str]:
        return self.resolver.resolve(self.path, module, level)

    def lookup(self, name: Optional[str]) -> Optional[tuple[str, str, dict, str]]:
        """A name as this module's code spells it, qualified through its absolute
        imports (`models.Net`, `utils.evaluate`) or a relative/star-imported local
        name -> (kind "class"|"function", module key, its summary entry)."""
        if not name:
            return None
        if self._relative is None:
            return None
        head, _, rest = name.partition(".")
        if head in self._relative:
            level, module, imported = self._relative[head]
            sub = self.module_key(f"{module}.{imported}" if module else imported, level)
            if sub is not None:  # `from . import models` then `models.Net`
                return self._symbol(sub, rest) if rest else None
            if rest:
                return None
            return self._symbol(self.module_key(module, level), imported)
        parts = name.split(".")
        for i in range(len(parts) - 1, 0, -1):
            key = self.module_key(".".join(parts[:i]))
            if key is not None:
                return self._symbol(key, ".".join(parts[i:]))
        if len(parts) == 1:
            for level, module in self._stars or ():
                found = self._symbol(self.module_key(module, level), name)
                if found is not None:
                    return found
        return None

    def _symbol(self, key: Optional[str], name: str, hops: int = 0) -> Optional[tuple[str, str, dict, str]]:
        if key is None or not name or "." in name or hops > _MAX_HOPS:
            return None
        s = self.summary(key)
        if s is None:
            return None
        if name in s.get("classes", {}):
            return "class", key, s["classes"][name], name
        if name in s.get("functions", {}):
            return "function", key, s["functions"][name], name
        target = s.get("exports", {}).get(name)
        if target is not None and target[1]:
            return self._symbol(target[0], target[1], hops + 1)
        for star in s.get("stars", ()):
            found = self._symbol(star, name, hops + 1)
            if found is not None:
                return found
        return None

    def imported_class(self, name: Optional[str]) -> Optional[dict]:
        found = self.lookup(name)
        return found[2] if found is not None and found[0] == "class" else None

    def imported_function(self, name: Optional[str]) -> Optional[tuple[str, str, dict, str]]:
        found = self.lookup(name)
        return found if found is not None and found[0] == "function" else None

    # Assumptions about callers in other modules ---------------------------------
    def assume(self, kind: str, function: str, param: Optional[str]) -> None:
        """Record that an answer depends on `function`'s callers in other modules
        (the answer given meanwhile is the one-file answer: unknown)."""
        self.assumptions.append(assumption_key(kind, self.module, function, param))
        at = self.asking
        self.spans.append((at.order, at.end_order) if at is not None else (-1, 1 << 60))

    def assumptions_for(self, since: int, order: Optional[int]) -> tuple[str, ...]:
        """The assumptions recorded since `since` that concern the statement numbered
        `order` (all of them when the statement is unknown)."""
        out = []
        for key, (lo, hi) in zip(self.assumptions[since:], self.spans[since:]):
            if order is None or lo <= order <= hi:
                out.append(key)
        return tuple(dict.fromkeys(out))


# The run's side: callers' records, checked once every module is summarised ---------
def caller_index(summaries: dict[str, dict]) -> dict[tuple[str, str], list[dict]]:
    index: dict[tuple[str, str], list[dict]] = {}
    for s in summaries.values():
        for call in s.get("calls", ()):
            index.setdefault((call["to"][0], call["to"][1]), []).append(call)
    return index


def overturned(keys: Iterable[str], callers: dict[tuple[str, str], list[dict]]) -> bool:
    """Must a finding made under these assumptions go? Yes when, for one function the
    finding depends on, every in-tree caller (at least one) contradicts one of them:
    it switched the model to eval mode, disabled gradients, or passed a model without
    dropout/batch-norm."""
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for key in keys:
        kind, module, function, param = parse_assumption(key)
        groups.setdefault((module, function), []).append((kind, param))
    for target, assumed in groups.items():
        sites = callers.get(target)
        if sites and all(any(_contradicts(site, kind, param) for kind, param in assumed) for site in sites):
            return True
    return False


def _contradicts(site: dict, kind: str, param: str) -> bool:
    if kind == NO_GRAD:
        return site.get("no_grad") is True
    arg = site.get("args", {}).get(param)
    if arg is None:
        return False
    if kind == EVAL:
        return arg.get("eval") is True
    if kind == SENSITIVE:
        return arg.get("sensitive") is False
    return False
