"""Baselines: record today's findings so that CI fails only on new ones.

An entry is identified by a fingerprint, not by a line number, so that unrelated
edits which move code up or down do not resurrect it. The fingerprint hashes the
rule code, the file's path (posix, relative to a base folder), the flagged line(s)
with whitespace collapsed (re-indenting code keeps it) and the notebook cell, plus an
occurrence counter: two identical bug lines in one file are two entries, and a third
identical one added later is new. The report formats reuse `fingerprints` for their
stable ids (SARIF partialFingerprints, GitLab fingerprint).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Iterable, Optional, Sequence

from .diagnostic import Diagnostic

BASELINE_VERSION = 1
TOOL = "evallint"


class BaselineError(Exception):
    """A baseline file that is missing or cannot be understood."""


def relative_posix(path: str, base: Path, cwd: Path) -> str:
    """`path` (as given, relative to `cwd`) as a posix path relative to `base`.

    The folders are resolved but the file itself is not, so a symlinked file keeps the
    name the user sees. Falls back to the absolute path where no relative one exists
    (another drive on Windows)."""
    full = Path(os.path.normpath(Path(cwd).resolve() / path))
    try:
        return PurePath(os.path.relpath(full, Path(base).resolve())).as_posix()
    except ValueError:
        return full.as_posix()


def _flagged_text(diag: Diagnostic) -> str:
    return "\n".join(" ".join(line.split()) for line in diag.source_lines)


def _digest(diag: Diagnostic, rel_path: str, occurrence: int) -> str:
    # The cell index is left out: inserting a cell above a finding must not make it new.
    key = json.dumps([diag.code, rel_path, _flagged_text(diag), occurrence])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def fingerprints(diagnostics: Sequence[Diagnostic], base: Path, cwd: Path) -> list[str]:
    """One fingerprint per diagnostic, in the order given.

    Occurrence counters are assigned in source order (not input order), so the result
    does not depend on how the caller sorted the list."""
    order = sorted(range(len(diagnostics)), key=lambda i: diagnostics[i].sort_key)
    seen: Counter[tuple] = Counter()
    result = [""] * len(diagnostics)
    for i in order:
        diag = diagnostics[i]
        rel = relative_posix(diag.path, base, cwd)
        key = (diag.code, rel, _flagged_text(diag))
        seen[key] += 1
        result[i] = _digest(diag, rel, seen[key])
    return result


def _entries(diagnostics: Sequence[Diagnostic], base: Path, cwd: Path) -> list[dict]:
    prints = fingerprints(diagnostics, base, cwd)
    entries = [
        {"code": d.code, "path": relative_posix(d.path, base, cwd), "cell": d.cell,
         "line": _flagged_text(d), "fingerprint": fp}
        for d, fp in zip(diagnostics, prints)
    ]
    # Sorted by content, not by line number, so moving code does not churn the file.
    entries.sort(key=lambda e: (e["path"], e["cell"] or 0, e["code"], e["line"], e["fingerprint"]))
    return entries


def write_baseline(path: Path, diagnostics: Iterable[Diagnostic], *,
                   cwd: Optional[Path] = None) -> int:
    """Write every diagnostic as a baseline entry; return the number of entries."""
    path = Path(path)
    base_cwd = Path.cwd() if cwd is None else Path(cwd)
    # Relative to the baseline's own folder, so the file works from any cwd.
    anchor = (base_cwd / path).parent
    entries = _entries(list(diagnostics), anchor, base_cwd)
    document = {"version": BASELINE_VERSION, "tool": TOOL, "entries": entries}
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    target = base_cwd / path
    temp = target.with_name(target.name + ".tmp")
    try:
        # Via a temp file, so an interrupted write never leaves half a baseline.
        temp.write_text(text, encoding="utf-8", newline="\n")
        os.replace(temp, target)
    except OSError as exc:
        raise BaselineError(f"cannot write baseline {path}: {exc.strerror or exc}") from None
    return len(entries)


@dataclass(frozen=True)
class Baseline:
    """The recorded fingerprints and the folder their paths are relative to."""

    folder: Path
    entries: tuple[dict, ...]

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(e["fingerprint"] for e in self.entries)

    def filter(self, diagnostics: Sequence[Diagnostic], *,
               cwd: Optional[Path] = None) -> tuple[list[Diagnostic], int]:
        """Split off the recorded findings: (new diagnostics in input order, suppressed)."""
        diagnostics = list(diagnostics)
        base_cwd = Path.cwd() if cwd is None else Path(cwd)
        known = self.fingerprints
        prints = fingerprints(diagnostics, self.folder, base_cwd)
        new = [d for d, fp in zip(diagnostics, prints) if fp not in known]
        return new, len(diagnostics) - len(new)


_ENTRY_FIELDS = {"code": str, "path": str, "fingerprint": str, "line": str}


def load_baseline(path: Path, *, cwd: Optional[Path] = None) -> Baseline:
    """Read a baseline file written by `write_baseline`; BaselineError if it is unusable."""
    path = Path(path)
    full = (Path.cwd() if cwd is None else Path(cwd)) / path
    try:
        text = full.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(
            f"baseline file {path} does not exist; create it with --write-baseline {path}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"baseline {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    _check_document(document, path)
    return Baseline(folder=full.parent.resolve(), entries=tuple(document["entries"]))


def _check_document(document: object, path: Path) -> None:
    def fail(why: str) -> BaselineError:
        return BaselineError(f"baseline {path} is malformed: {why}")

    if not isinstance(document, dict) or document.get("tool") != TOOL:
        raise fail('expected a JSON object with "tool": "evallint"')
    if document.get("version") != BASELINE_VERSION:
        raise fail(f"unsupported version {document.get('version')!r} "
                   f"(this evallint reads version {BASELINE_VERSION})")
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise fail('"entries" must be a list')
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise fail(f"entry {number} is not an object")
        for name, kind in _ENTRY_FIELDS.items():
            if not isinstance(entry.get(name), kind):
                raise fail(f'entry {number} has no string "{name}"')
