"""Lint an editor buffer (not the file on disk) with the settings of its folder."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import ConfigError, Settings, load_settings
from ..diagnostic import Diagnostic
from ..engine import lint_text
from ..fixer import fix_source, verify_offered_fixes
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
        result = lint_text(text, shown_path, settings, self.rules, project=self.project.context(settings, path))
        if result.source is not None:
            verify_offered_fixes(result.source, result, settings, self.rules)  # no fix that would not hold
        diagnostics = tuple(sorted(result.diagnostics, key=lambda d: d.sort_key))
        return LintedDocument(uri, version, text, shown_path, result.source, diagnostics, settings,
                              tuple(result.errors))

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

