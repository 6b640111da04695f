"""A content-hash cache of check results, so unchanged files are not analysed again.

The key covers the file's bytes, its path, evallint's version, the installed rule
packs and every setting that changes results; entries are small JSON files under
`.evallint_cache/` in the project root (or `--cache-dir`, `$EVALLINT_CACHE_DIR`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from . import __version__
from .diagnostic import Diagnostic, diagnostic_from_json

CACHE_DIR = ".evallint_cache"


ENV_VAR = "EVALLINT_CACHE_DIR"


def project_root(paths: list[str]) -> Path:
    """Where the cache lives by default: the nearest folder with a pyproject.toml above
    the first checked path, else that path's own folder (never the current folder,
    which may be anywhere)."""
    first = Path(paths[0] if paths else ".").absolute()
    start = first if first.is_dir() else first.parent
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return start


def cache_folder(paths: list[str], chosen: Optional[str] = None) -> Path:
    """`--cache-dir`, else $EVALLINT_CACHE_DIR, else `.evallint_cache` in the project root."""
    chosen = chosen or os.environ.get(ENV_VAR)
    if chosen:
        return Path(chosen)
    return project_root(paths) / CACHE_DIR


class ResultCache:
    def __init__(self, root: Path, settings_key: str, rules_key: str, folder: Optional[Path] = None) -> None:
        self.dir = (folder if folder is not None else root / CACHE_DIR) / "v1"
        self.salt = f"{__version__}\0{settings_key}\0{rules_key}".encode()

    def key(self, path: str, data: bytes) -> str:
        h = hashlib.sha256(self.salt)
        h.update(path.encode("utf-8", "surrogateescape") + b"\0")
        h.update(data)
        return h.hexdigest()

    def get(self, key: str) -> Optional[list[Diagnostic]]:
        try:
            raw = json.loads((self.dir / key[:2] / f"{key}.json").read_text(encoding="utf-8"))
            return [diagnostic_from_json(d, tuple(d.get("source_lines", ()))) for d in raw]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, diagnostics: list[Diagnostic]) -> None:
        folder = self.dir / key[:2]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            gitignore = self.dir.parent / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("# created by evallint\n*\n")
            payload = [{**d.to_json(), "source_lines": list(d.source_lines)} for d in diagnostics]
            tmp = folder / f".{key}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(payload), encoding="utf-8")
            os.replace(tmp, folder / f"{key}.json")
        except OSError:
            pass  # a read-only tree just runs without a cache
