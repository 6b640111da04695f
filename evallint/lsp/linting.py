"""Lint an editor buffer (not the file on disk) with the settings of its folder."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

from ..config import ConfigError, Settings, load_settings
from ..diagnostic import Diagnostic
from ..engine import lint_text
from ..fixer import fix_source
from ..incremental import IncrementalLinter, LintStats
from ..registry import load_rules
from ..source import Source
from .callers import CallerIndex
from .project import WorkspaceProject


@dataclass(frozen=True)
class LintedDocument:
    """One version of one open document and what evallint found in it."""

    uri: str
    version: Optional[int]
    text: str
    path: str
    source: Optional[Source]          # None when the buffer could not be read as source
    diagnostics: tuple[Diagnostic, ...]
    settings: Settings
    errors: tuple[str, ...] = ()      # internal errors (a rule crashed): for the log
    # Fixes are verified (applied once, re-checked, withdrawn unless they hold) off
    # the diagnostics path: by `DocumentLinter.verify`, before any code action.
    fixes_verified: bool = True
    verifier: Optional[Callable[[], list]] = field(default=None, compare=False, repr=False)

    @property
    def is_notebook(self) -> bool:
        return self.path.endswith(".ipynb")


class DocumentLinter:
    """Owns the rule set and a per-folder settings cache; safe to call from threads."""

    def __init__(self, fallback_folder: Optional[Path] = None) -> None:
        self._rules = None
        self._settings: dict[Path, Settings] = {}
        self._lock = threading.Lock()
        self.fallback_folder = fallback_folder or Path.cwd()
        # Config errors seen since the last cache reset, for the server to show once.
        self.config_errors: dict[Path, str] = {}
        # The other modules of the workspace, summarised lazily when a lint imports them.
        self.project = WorkspaceProject()
        self.project.callers = CallerIndex(self.project, lambda module: self.on_callers_ready(module))
        self.on_callers_ready = lambda module: None  # the server re-lints the documents concerned
        # uri -> what the last lints of that document found, part by part (see incremental).
        self._documents: dict[str, IncrementalLinter] = {}
        self.stats = LintStats()

    @property
    def rules(self):
        with self._lock:
            if self._rules is None:
                self._rules = load_rules()
            return self._rules

    def forget_settings(self) -> None:
        """Drop cached settings (a pyproject.toml changed)."""
        with self._lock:
            self._settings.clear()
            self.config_errors.clear()

    def settings_for(self, path: Optional[str]) -> Settings:
        folder = Path(path).parent if path else self.fallback_folder
        with self._lock:
            cached = self._settings.get(folder)
        if cached is not None:
            return cached
        try:
            settings = load_settings(folder, rules=self.rules)
        except ConfigError as exc:
            # A broken [tool.evallint] must not silence the editor: lint with the
            # defaults, and let the server show the error once.
            self.config_errors[folder] = str(exc)
            settings = Settings(enabled=frozenset(self.rules.codes()), root=folder)
        with self._lock:
            self._settings[folder] = settings
        return settings

    def lint(self, uri: str, version: Optional[int], text: str, path: Optional[str]) -> LintedDocument:
        shown_path = path or uri
        settings = self.settings_for(path)
        if path and settings.is_excluded(Path(path)):
            # Same as the CLI's discovery: an excluded file has nothing to say.
            return LintedDocument(uri, version, text, shown_path, None, (), settings)
        project = self.project.context(settings, path)
        full = lambda: lint_text(text, shown_path, settings, self.rules, project=project)  # noqa: E731
        if shown_path.endswith(".ipynb"):
            linted = IncrementalLinter.whole(full(), settings, self.rules)
        else:
            linted = self._incremental_for(uri, shown_path).lint(text, settings, self.rules, project, full=full)
        result = linted.result
        diagnostics = tuple(sorted(result.diagnostics, key=lambda d: d.sort_key))
        offers = any(d.fix is not None for d in diagnostics)
        return LintedDocument(uri, version, text, shown_path, result.source, diagnostics, settings,
                              tuple(result.errors), fixes_verified=not offers,
                              verifier=linted.verify if offers else None)

    def verify(self, doc: LintedDocument) -> LintedDocument:
        """The document with only the fixes that hold (no fix is offered that its rule
        would not accept afterwards); the work is kept per part of the document."""
        if doc.fixes_verified or doc.verifier is None:
            return doc
        diagnostics = tuple(sorted(doc.verifier(), key=lambda d: d.sort_key))
        return replace(doc, diagnostics=diagnostics, fixes_verified=True, verifier=None)

    def _incremental_for(self, uri: str, path: str) -> IncrementalLinter:
        with self._lock:
            found = self._documents.get(uri)
            if found is None or found.path != path:
                found = self._documents[uri] = IncrementalLinter(path, self.stats)
            return found

    def forget(self, uri: str) -> None:
        """The document was closed: drop what its lints kept."""
        with self._lock:
            self._documents.pop(uri, None)

    def fix_all(self, doc: LintedDocument) -> Optional[str]:
        """The document's text with every fix applied to a fixed point, None if nothing
        changes. Unsafe fixes only when the project's config enables them, as `evallint fix`."""
        if doc.source is None:
            return None
        outcome = fix_source(doc.source, doc.settings, self.rules, unsafe=doc.settings.unsafe_fixes,
                             project=self.project.context(doc.settings, doc.path))
        if not outcome.applied:
            return None
        new_text = outcome.source.serialized()
        return None if new_text == doc.text else new_text

