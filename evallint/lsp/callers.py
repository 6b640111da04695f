"""Callers of a module's helpers in the other files of the workspace, for the editor.

A helper in utils.py whose callers all switch the model to eval mode is clean; in the
editor those callers are found in the background: a text scan of the workspace's
Python files for import lines naming the module, then the summaries of the files
that pass it (one small job at a time on the analysis thread, so lints keep their
turn). Until the index is ready the helper is judged on its own file; when it is, the
documents that asked are linted again.
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from ..config import Settings, relative_posix
from ..deepstack import call_with_big_stack
from ..facts.project import caller_index

MAX_FILES = 5000          # a workspace scan stops here (a monorepo is not scanned whole)
_MAX_FILE_BYTES = 2_000_000


class CallerIndex:
    def __init__(self, workspace, on_ready: Callable[[str], None]) -> None:
        self.workspace = workspace
        self.on_ready = on_ready                 # called with the module key when built
        self._ready: dict[str, dict] = {}        # module key -> callers' index
        self._building: set[str] = set()
        self._generation = 0
        self._lock = threading.Lock()

    def invalidate(self, changed: Optional[str] = None) -> None:
        """A file changed: the indexes of the other modules (whose callers it may
        hold) are rebuilt when next asked for; editing the helper itself keeps its own."""
        with self._lock:
            for module in list(self._ready):
                if module != changed:
                    del self._ready[module]
            if changed not in self._building:
                self._generation += 1

    def get(self, settings: Settings, module: str) -> Optional[dict]:
        """The callers' index for `module`, or None while it is being built."""
        with self._lock:
            if module in self._ready:
                return self._ready[module]
            if module in self._building:
                return None
            self._building.add(module)
            generation = self._generation
        threading.Thread(target=self._build, args=(settings, module, generation), daemon=True,
                         name="evallint-callers").start()
        return None

    def _build(self, settings: Settings, module: str, generation: int) -> None:
        try:
            summaries = {}
            for key in _importers(settings, module):
                summary = call_with_big_stack(self.workspace.summary, settings, key)
                if summary is not None:
                    summaries[key] = summary
            index = caller_index(summaries)
        except Exception:  # a scan that fails leaves the helper judged on its own file
            index = {}
        with self._lock:
            self._building.discard(module)
            if generation != self._generation:
                return  # files changed meanwhile: the next lint asks again
            self._ready[module] = index
        self.on_ready(module)


def _importers(settings: Settings, module: str) -> list[str]:
    """Workspace files whose import lines name the module (by its file or folder name)."""
    stem = Path(module).stem if Path(module).name != "__init__.py" else Path(module).parent.name
    if not stem.isidentifier():
        return []
    line = re.compile(rf"^[ \t]*(from[ \t]+[\w.]*\b{stem}\b[\w.]*[ \t]+import|from[ \t]+\.*[\w.]*[ \t]+import[^\n]*\b{stem}\b"
                      rf"|import[ \t]+[^\n]*\b{stem}\b)", re.M)
    out, seen = [], 0
    deadline = time.monotonic() + 30
    for folder, dirs, files in os.walk(settings.root):
        dirs[:] = [d for d in dirs if not settings.is_excluded(Path(folder) / d)]
        for name in files:
            if not name.endswith(".py"):
                continue
            seen += 1
            if seen > MAX_FILES or time.monotonic() > deadline:
                return out
            path = Path(folder) / name
            try:
                if path.stat().st_size > _MAX_FILE_BYTES:
                    continue
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            key = relative_posix(str(path), settings.root)
            if key != module and line.search(text):
                out.append(key)
    return out
