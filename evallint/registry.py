"""Rule packs, found through the `evallint.rules` entry-point group.

The built-in pack is found the same way as a team's own or a third party's. An entry
point may name a module (its `RULES` list, or every Rule subclass in it), a list of
rule classes, or one rule class.
"""
from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Iterable, Optional

from .diagnostic import Severity
from .rule import Rule, is_rule_class

if sys.version_info >= (3, 10):
    from importlib.metadata import entry_points
else:  # pragma: no cover
    from importlib_metadata import entry_points

GROUP = "evallint.rules"


@dataclass(frozen=True)
class EngineRule:
    """A code the engine itself reports (not a rule module)."""

    code: str
    name: str
    summary: str
    doc: str
    severity: Severity = Severity.ERROR
    fixable = None
    replayable = False
    tokens: tuple = ()

    def documentation(self) -> str:
        return self.doc

    def docs_url(self) -> str:
        return f"https://evallint.dev/rules/{self.code}"


ENGINE_RULES = (
    EngineRule("EL000", "syntax-error", "The file (or a notebook cell) does not parse.",
               "## What it does\nReports a file or notebook cell that libcst cannot parse.\n\n"
               "## Why it is wrong\nA file that does not parse cannot be checked; the rest of the files still are.\n\n"
               "## Fix\nFix the syntax error at the reported position."),
    EngineRule("EL001", "unreadable-file", "The file cannot be read: bad encoding, broken notebook JSON, I/O error.",
               "## What it does\nReports a file that cannot be decoded or a notebook whose JSON is broken.\n\n"
               "## Why it is wrong\nevallint cannot check what it cannot read; other files still run.\n\n"
               "## Fix\nSave the file as UTF-8 (or declare its encoding), or repair the notebook JSON."),
)


class RuleError(Exception):
    pass


class RuleSet:
    def __init__(self, rules: Iterable[type[Rule]], origins: Optional[dict[str, str]] = None) -> None:
        by_code: dict[str, type[Rule]] = {}
        for r in rules:
            other = by_code.get(r.code)
            if other is not None and other is not r:
                raise RuleError(f"rule code {r.code} is defined twice: {other.__module__} and {r.__module__}")
            by_code[r.code] = r
        self._rules = dict(sorted(by_code.items()))
        self._by_name = {r.name: r for r in self._rules.values()}
        self.origins = origins or {}

    def all(self) -> list[type[Rule]]:
        return list(self._rules.values())

    def everything(self) -> list:
        """Engine codes and rules, sorted by code."""
        return sorted([*ENGINE_RULES, *self._rules.values()], key=lambda r: r.code)

    def get(self, code_or_name: str):
        key = code_or_name.strip()
        for e in ENGINE_RULES:
            if key.upper() == e.code or key == e.name:
                return e
        return self._rules.get(key.upper()) or self._by_name.get(key)

    def codes(self) -> list[str]:
        return [r.code for r in self.everything()]

    def engine_codes(self) -> list[str]:
        return [e.code for e in ENGINE_RULES]

    def expand(self, selector: str) -> list[str]:
        """A code, a code prefix (EL1, EL), a rule name or ALL -> codes; [] if unknown."""
        s = selector.strip()
        if s.upper() == "ALL":
            return self.codes()
        rule = self.get(s)
        if rule is not None:
            return [rule.code]
        up = s.upper()
        return [c for c in self.codes() if c.startswith(up)] if up else []


def rules_from(obj) -> list[type[Rule]]:
    if is_rule_class(obj):
        return [obj]
    if isinstance(obj, ModuleType):
        listed = getattr(obj, "RULES", None)
        if listed is not None:
            return [r for r in listed if is_rule_class(r)]
        return [v for _, v in inspect.getmembers(obj, is_rule_class) if v.__module__.startswith(obj.__name__)]
    if isinstance(obj, (list, tuple)):
        return [r for r in obj if is_rule_class(r)]
    return []


@lru_cache(maxsize=1)
def load_rules() -> RuleSet:
    rules: list[type[Rule]] = []
    origins: dict[str, str] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken pack must not take the others down
            raise RuleError(f"cannot load rule pack '{ep.name}' ({ep.value}): {exc}") from None
        for r in rules_from(obj):
            rules.append(r)
            origins[r.code] = ep.name
    return RuleSet(rules, origins)

