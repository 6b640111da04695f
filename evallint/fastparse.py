"""`libcst.parse_module` without libcst's per-node validation.

Every node libcst builds runs `_validate` in `__post_init__` (regular expressions on
each whitespace node, `isidentifier` on each name): a third of a parse or more, and
useless for a tree the parser itself produced from valid tokens (libcst's own code
notes that parsing could skip it). While this thread parses, node construction skips
validation; nodes built by any other thread, and every node built afterwards (the
replacements a fix constructs), are validated as usual. The tree is the same.
"""
from __future__ import annotations

import threading

import libcst as cst
from libcst._nodes.base import CSTNode

_validating_post_init = CSTNode.__post_init__
_lock = threading.Lock()
_parsing: set[int] = set()   # threads now inside `parse_module`


def _post_init(self) -> None:
    if threading.get_ident() not in _parsing:
        self._validate()


def parse_module(text: str) -> cst.Module:
    me = threading.get_ident()
    with _lock:
        _parsing.add(me)
        CSTNode.__post_init__ = _post_init
    try:
        return cst.parse_module(text)
    finally:
        with _lock:
            _parsing.discard(me)
            if not _parsing:
                CSTNode.__post_init__ = _validating_post_init
