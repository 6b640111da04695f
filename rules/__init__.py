"""The built-in rule pack, installed as `evallint_rules`; found through the
`evallint.rules` entry-point group like any third-party pack.

Each module holds one rule: its documentation, its examples and its check.
"""
from __future__ import annotations

import importlib
import pkgutil

from evallint.rule import is_rule_class


def _discover():
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("el"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(v for v in vars(module).values() if is_rule_class(v) and v.__module__ == module.__name__)
    return sorted(found, key=lambda r: r.code)


RULES = _discover()
