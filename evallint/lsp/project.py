"""The project view in the editor: the summaries of the modules an open document
imports, built lazily when a lint asks for them (never a workspace scan), from the
open buffer when the module is open, else from disk, and kept while their text (and
the texts of the summaries they read) stay the same.

Callers of a helper in other files come from a background scan (`callers`): until it
is done the helper is judged on its own file, then it is linted again.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import libcst as cst

from ..config import Settings, relative_posix
from ..deepstack import call_with_big_stack
from ..fastparse import parse_module
from ..facts import ModuleFacts
from ..facts.project import ModuleResolver, ProjectLink, overturned, parse_assumption, project_root
from ..source import Source, SourceError

_MAX_FILE_BYTES = 2_000_000  # a generated module this big holds no model class worth a parse


@dataclass
class _Entry:
    digest: str
    summary: Optional[dict]
    read: dict[str, str]  # module key -> digest of the summaries it read


class EditorContext:
    """The engine's project context for one lint of one open document."""

    want_summary = False
    imported = False

    def __init__(self, workspace: "WorkspaceProject", settings: Settings, path: str) -> None:
        self.workspace, self.settings, self.path = workspace, settings, path

    def link(self, path: str) -> ProjectLink:
        return self.workspace.link(self.settings, path)

    def drop_overturned(self, diagnostics: list) -> list:
        index = self.workspace.callers
        keys = {k for d in diagnostics for k in d.depends_on}
        if index is None or not keys:
            return diagnostics
        callers: dict = {}
        for module in sorted({parse_assumption(k)[1] for k in keys}):
            found = index.get(self.settings, module)
            if found is None:
                return diagnostics  # still scanning: the document is linted again when done
            callers.update(found)
        return [d for d in diagnostics if not (d.depends_on and overturned(d.depends_on, callers))]


class WorkspaceProject:
    def __init__(self, buffer_text: Optional[Callable[[str], Optional[str]]] = None) -> None:
        self.buffer_text = buffer_text or (lambda path: None)
        self.callers = None  # a callers.CallerIndex, set by the language server
        self._entries: dict[str, _Entry] = {}
        self._building: set[str] = set()
        self._lock = threading.RLock()

    def context(self, settings: Settings, path: Optional[str]) -> Optional[EditorContext]:
        return EditorContext(self, settings, path) if path else None

    def link(self, settings: Settings, path: str) -> ProjectLink:
        root = settings.root
        roots = [root] + [r for r in [project_root(Path(path))] if r is not None and r != root]
        resolver = ModuleResolver(roots, lambda p: relative_posix(p, root), lambda key: True)
        return ProjectLink(relative_posix(path, root), path, resolver,
                           lambda key: self.summary(settings, key))

    # Summaries, lazily -------------------------------------------------------------
    def _text(self, settings: Settings, key: str) -> Optional[tuple[str, str]]:
        path = str(settings.root / key) if not Path(key).is_absolute() else key
        text = self.buffer_text(path)
        if text is None:
            try:
                if Path(path).stat().st_size > _MAX_FILE_BYTES:
                    return None
                text = Source.read(path).text
            except (OSError, SourceError):
                return None
        return path, text

    def _digest(self, settings: Settings, key: str) -> Optional[str]:
        found = self._text(settings, key)
        return hashlib.sha256(found[1].encode("utf-8", "surrogatepass")).hexdigest() if found else None

    def summary(self, settings: Settings, key: str) -> Optional[dict]:
        with self._lock:
            found = self._text(settings, key)
            if found is None or key in self._building:
                return None  # unreadable, or an import cycle
            path, text = found
            digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
            entry = self._entries.get(key)
            if entry is not None and entry.digest == digest and all(
                    self._digest(settings, k) == d for k, d in entry.read.items()):
                return entry.summary
            self._building.add(key)
            try:
                summary, read = self._build(settings, path, text)
            finally:
                self._building.discard(key)
            self._entries[key] = _Entry(digest, summary, {k: self._digest(settings, k) or "" for k in read})
            return summary

    def _build(self, settings: Settings, path: str, text: str) -> tuple[Optional[dict], set[str]]:
        try:
            module = call_with_big_stack(parse_module, text)
        except (cst.ParserSyntaxError, RecursionError):
            return None, set()
        link = self.link(settings, path)
        try:
            summary = call_with_big_stack(lambda: ModuleFacts(module, path, settings.patterns, project=link).summary())
        except RecursionError:
            return None, set()
        return summary, set(link.read)
