"""`libcst.parse_module` without libcst's per-node validation.

Every node libcst builds runs `_validate` in `__post_init__` (regular expressions on
each whitespace node, `isidentifier` on each name): a third of a parse or more, and
useless for a tree the parser itself produced from valid tokens (libcst's own code
notes that parsing could skip it). While this thread parses, node construction skips
validation; nodes built by any other thread, and every node built afterwards (the
replacements a fix constructs), are validated as usual. The tree is the same.

A process that builds nodes on one thread only (a batch check: the analysis runs on
one thread, nothing else touches libcst meanwhile) can say so with `parse_alone()`:
its parses then skip even the per-node test of which thread is building, a Python
call on each of the millions of nodes of a run (about a tenth of a parse).
"""
from __future__ import annotations

import threading

import libcst as cst
from libcst._nodes.base import CSTNode

_validating_post_init = CSTNode.__post_init__
_lock = threading.Lock()
_parsing: set[int] = set()   # threads now inside `parse_module`
_alone = False


def _post_init(self) -> None:
    if threading.get_ident() not in _parsing:
        self._validate()


# `self.__post_init__()` on a class attribute that is not a descriptor calls it with no
# arguments: `int` is a no-op that costs a C call, not a Python frame.
_skip_post_init = int


def parse_alone() -> None:
    """Declare that, from now on, no thread of this process builds libcst nodes while
    another one parses (see the module docstring). Never undone."""
    global _alone
    _alone = True


def parse_module(text: str) -> cst.Module:
    if _alone:
        CSTNode.__post_init__ = _skip_post_init
        try:
            return cst.parse_module(text)
        finally:
            CSTNode.__post_init__ = _validating_post_init
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
