"""`[tool.evallint]` in the nearest pyproject.toml, merged with command-line options.

Unknown keys and unknown rule codes are errors (ConfigError), never silence.
"""
from __future__ import annotations

import fnmatch
import functools
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

from .facts.patterns import DEFAULTS as PATTERN_DEFAULTS, NamePatterns

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KNOWN_KEYS = {"select", "ignore", "extend-select", "extend-ignore", "per-file-ignores", "exclude",
              "extend-exclude", "force-exclude", "unsafe-fixes", "fail-on", *PATTERN_DEFAULTS}
DEFAULT_EXCLUDE = (".git", ".hg", ".svn", ".venv", "venv", "env", ".env", "__pycache__", ".tox",
                   ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".evallint_cache",
                   "build", "dist", "node_modules", "site-packages", ".ipynb_checkpoints", ".eggs")
FAIL_LEVELS = ("error", "warning", "info")


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    enabled: frozenset[str]
    root: Path
    config_file: Optional[Path] = None
    unsafe_fixes: bool = False
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    force_exclude: bool = False   # apply excludes to files named explicitly too
    fail_on: str = "warning"
    patterns: NamePatterns = field(default_factory=NamePatterns.from_strings)
    pattern_overrides: tuple[tuple[str, str], ...] = ()

    def enabled_for(self, path: str) -> frozenset[str]:
        """Codes enabled for one file after per-file-ignores."""
        if not self.per_file_ignores:
            return self.enabled
        rel = relative_posix(path, self.root)
        drop: set[str] = set()
        for pattern, codes in self.per_file_ignores:
            if _glob_match(rel, pattern):
                drop |= codes
        return self.enabled - drop

    def is_excluded(self, path: Path) -> bool:
        rel = relative_posix(str(path), self.root)
        names, rel_match, name_match = _exclude_matcher(self.exclude)
        return (not names.isdisjoint(PurePosixPath(rel).parts) or rel_match(rel) is not None
                or name_match(path.name) is not None)

    def fingerprint(self) -> str:
        """Stable text of everything that changes results (for the cache)."""
        return repr((sorted(self.enabled), self.per_file_ignores, self.pattern_overrides))


def relative_posix(path: str, root: Path) -> str:
    """`path` relative to `root` (both with links resolved), in POSIX form; the path
    itself when it lies elsewhere. Asked for every file of a run: string operations,
    not pathlib."""
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return Path(path).as_posix()
    base = _real_root(str(root))
    if real == base:
        return "."
    prefix = base if base.endswith(os.sep) else base + os.sep
    if not real.startswith(prefix):
        return Path(path).as_posix()
    return Path(real[len(prefix):]).as_posix()


@functools.lru_cache(maxsize=64)
def _real_root(root: str) -> str:
    return os.path.realpath(root)


def _glob_variants(pattern: str) -> tuple[str, ...]:
    """A pattern matches the path itself, anything under it, and the same at any depth."""
    pattern = pattern.rstrip("/")
    return pattern, pattern + "/*", "*/" + pattern, "*/" + pattern + "/*"


def _glob_match(rel: str, pattern: str) -> bool:
    return any(fnmatch.fnmatch(rel, v) for v in _glob_variants(pattern))


@functools.lru_cache(maxsize=16)
def _exclude_matcher(patterns: tuple[str, ...]):
    """(names matched as a path component, a match of the relative path, a match of
    the file name): every pattern compiled into one regular expression, once, instead
    of five `fnmatch` calls per pattern and file."""
    never = re.compile(r"(?!)").match
    if not patterns:
        return frozenset(), never, never
    rel = "|".join(fnmatch.translate(v) for p in patterns for v in _glob_variants(p))
    name = "|".join(fnmatch.translate(p) for p in patterns)
    return frozenset(patterns), re.compile(rel).match, re.compile(name).match


def find_config(start: Path) -> Optional[Path]:
    """The nearest pyproject.toml with a [tool.evallint] table, looking upwards."""
    start = start.resolve()
    folder = start if start.is_dir() else start.parent
    for d in (folder, *folder.parents):
        candidate = d / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{candidate}: cannot read TOML: {exc}") from None
            if "evallint" in data.get("tool", {}):
                return candidate
    return None


def read_table(path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read TOML: {exc}") from None
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("evallint", {})
    else:  # a dedicated evallint.toml: top level, or [tool.evallint]
        table = data.get("tool", {}).get("evallint", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.evallint] must be a table")
    return table


def load_settings(start: Path, config_file: Optional[Path] = None, *, rules=None,
                  select: Optional[Iterable[str]] = None, ignore: Optional[Iterable[str]] = None,
                  extend_select: Optional[Iterable[str]] = None, unsafe_fixes: Optional[bool] = None,
                  fail_on: Optional[str] = None, force_exclude: Optional[bool] = None) -> Settings:
    if rules is None:
        from .registry import load_rules
        rules = load_rules()
    path = config_file if config_file is not None else find_config(start)
    table = read_table(path) if path is not None else {}
    where = str(path) if path else "command line"
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} in [tool.evallint]: "
                          f"{', '.join(unknown)} (known: {', '.join(sorted(KNOWN_KEYS))})")
    root = path.parent if path is not None else Path.cwd()

    def codes(value, key) -> set[str]:
        if value is None:
            return set()
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\s]+", value) if v]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: '{key}' must be a list of rule codes")
        out: set[str] = set()
        for v in value:
            expanded = rules.expand(v)
            if not expanded:
                raise ConfigError(f"{where}: unknown rule code or name '{v}' in '{key}' "
                                  f"(run `evallint rules` for the list)")
            out.update(expanded)
        return out

    enabled = codes(table["select"], "select") if "select" in table else set(rules.codes())
    enabled |= codes(table.get("extend-select"), "extend-select")
    ignored = codes(table.get("ignore"), "ignore") | codes(table.get("extend-ignore"), "extend-ignore")
    enabled -= ignored
    # Command-line options override the file.
    if select is not None:
        enabled = codes(list(select), "--select")
    if extend_select:
        enabled |= codes(list(extend_select), "--extend-select")
    if ignore:
        cli_ignored = codes(list(ignore), "--ignore")
        enabled -= cli_ignored
        ignored |= cli_ignored

    pfi = table.get("per-file-ignores", {})
    if not isinstance(pfi, dict):
        raise ConfigError(f"{where}: 'per-file-ignores' must be a table of glob = [codes]")
    per_file = tuple((glob, frozenset(codes(v, f"per-file-ignores.{glob}"))) for glob, v in pfi.items())

    def globs(key) -> tuple[str, ...]:
        v = table.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"{where}: '{key}' must be a list of glob patterns")
        return tuple(v)

    exclude = globs("exclude") if "exclude" in table else DEFAULT_EXCLUDE
    exclude = exclude + globs("extend-exclude")

    unsafe = table.get("unsafe-fixes", False)
    forced = table.get("force-exclude", False)
    for key, value in (("unsafe-fixes", unsafe), ("force-exclude", forced)):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: '{key}' must be true or false")
    if not enabled:
        raise ConfigError(f"{where}: the selection is empty: no rule would run "
                          "(check --select/select and ignore)")
    # A file that cannot be read or parsed is never checked silently (as ruff reports
    # syntax errors whatever the selection): only an explicit ignore drops these codes.
    enabled |= set(rules.engine_codes()) - ignored
    level = fail_on or table.get("fail-on", "warning")
    if level not in FAIL_LEVELS:
        raise ConfigError(f"{where}: 'fail-on' must be one of {', '.join(FAIL_LEVELS)}")

    overrides = {}
    for key in PATTERN_DEFAULTS:
        if key in table:
            value = table[key]
            if not isinstance(value, str):
                raise ConfigError(f"{where}: '{key}' must be a regular expression string")
            try:
                re.compile(value)
            except re.error as exc:
                raise ConfigError(f"{where}: '{key}' is not a valid regular expression: {exc}") from None
            overrides[key] = value
    return Settings(
        enabled=frozenset(enabled), root=root.resolve(), config_file=path,
        unsafe_fixes=unsafe if unsafe_fixes is None else unsafe_fixes,
        per_file_ignores=per_file, exclude=exclude, fail_on=level,
        force_exclude=forced if force_exclude is None else force_exclude,
        patterns=NamePatterns.from_strings(overrides), pattern_overrides=tuple(sorted(overrides.items())),
    )
