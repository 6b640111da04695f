"""Which plain names a piece of code reads and which it binds, from the facts index.

A region is one flat block of statements, so a set-level answer is what the cutter
needs: everything nested in a statement counts as that statement's.
"""
from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Iterable

import libcst as cst

from ..facts.exprs import target_names
from ..facts.index import ModuleIndex, Stmt
from ..facts.walk import names_in, walk

BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class NameUse:
    reads: frozenset[str]
    writes: frozenset[str]
    aug: frozenset[str]  # `x += ...` targets: read and written (not in `writes`)


def use_of(stmts: Iterable[Stmt], node: cst.CSTNode) -> NameUse:
    """The names used by `stmts`, the facts records of everything in `node`."""
    reads: set[str] = set()
    writes = set(_scoped_bindings(node))
    aug: set[str] = set()
    for s in stmts:
        target = s.node.target if isinstance(s.node, cst.AugAssign) else None
        if isinstance(target, cst.Name):
            # The index records `x += v` as a load and a store of x; the cutter keeps it
            # apart: an accumulator update needs x initialised before, it does not define x.
            x = target.value
            aug.add(x)
            writes |= s.stores - {x}
            reads |= s.loads if x in names_in(s.node.value) else s.loads - {x}
        else:
            writes |= s.stores
            reads |= s.loads
    return NameUse(frozenset(reads), frozenset(writes), frozenset(aug))


def _scoped_bindings(node: cst.CSTNode) -> set[str]:
    """Comprehension targets, parameters and def/class names: local to their own scope
    in the index, but bound (not free) as far as running the region goes."""
    out: set[str] = set()
    for n in walk(node):
        if isinstance(n, cst.CompFor):
            out.update(target_names(n.target))
        elif isinstance(n, cst.Parameters):  # `walk` skips `*args` (a punctuation field)
            params = (*n.posonly_params, *n.params, n.star_arg, *n.kwonly_params, n.star_kwarg)
            out.update(p.name.value for p in params if isinstance(p, cst.Param))
        elif isinstance(n, (cst.FunctionDef, cst.ClassDef)):
            out.add(n.name.value)
    return out


def expr_reads(expr: cst.BaseExpression) -> frozenset[str]:
    """The names an expression loads, as the index records them for a statement."""
    index = ModuleIndex(cst.Module(body=[cst.SimpleStatementLine(body=[cst.Expr(value=expr)])]))
    return frozenset(index.statements[0].loads)


def free_names(uses: Iterable[NameUse]) -> list[str]:
    """Names read by a sequence of statements before any of them binds them, in order
    of first use (an `x += 1` with no earlier binding reads a free `x`)."""
    bound: set[str] = set()
    free: list[str] = []
    for use in uses:
        # Within one statement (a loop body), a name bound anywhere counts as bound.
        for name in sorted((use.reads | use.aug) - use.writes):
            if name not in bound and name not in free:
                free.append(name)
        bound |= use.writes
    return free
