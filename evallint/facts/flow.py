"""Simple, flow-insensitive data flow over statements in source order.

Good enough for the shapes rules look at (straight-line set-up, a loop, a report
after it); when it cannot tell, callers stay quiet.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from .exprs import value_assigned
from .index import ModuleIndex, Stmt


def scope_statements(index: ModuleIndex, stmt: Stmt) -> list[Stmt]:
    """The statements of `stmt`'s own scope, in order: its function's body, the module's
    top level, or, for code run directly in a class body, that class body (where a
    `net.eval()` before the loop does reach it)."""
    owner = _class_scope(stmt)
    if owner is None:
        return index.function_body(stmt.function)
    return [s for s in index.statements[owner.order + 1: owner.end_order + 1]
            if s.function is stmt.function and _class_scope(s) is owner]


def _class_scope(stmt: Stmt) -> Optional[Stmt]:
    """The class whose body runs `stmt` directly (no function in between), if any."""
    for a in stmt.ancestors():
        if a.is_function:
            return None
        if isinstance(a.node, cst.ClassDef):
            return a
    return None


def last_assignment_before(index: ModuleIndex, name: str, at: Stmt) -> Optional[Stmt]:
    """The last statement before `at` in its scope that stores `name`; for a name
    never stored in a function, the module level is searched."""
    found = None
    for s in scope_statements(index, at):
        if s.order >= at.order:
            break
        if name in s.stores and not s.contains(at):
            found = s
    if found is None and at.function is not None and not any(name in s.stores for s in scope_statements(index, at)):
        if name in _params(at.function):
            return None
        for s in index.function_body(None):
            if name in s.stores:
                found = s
    return found


def assigned_value(index: ModuleIndex, name: str, at: Stmt) -> Optional[cst.BaseExpression]:
    """The right-hand side of the last plain `name = value` before `at`."""
    s = last_assignment_before(index, name, at)
    return value_assigned(s.node, name) if s is not None else None


def reads_after(index: ModuleIndex, name: str, after: Stmt) -> list[Stmt]:
    """Statements after `after` (and outside it) in its scope that read `name`, up to
    an unconditional overwrite (a store without a read in the same or an outer block)."""
    outer = {id(a) for a in after.ancestors()}
    out = []
    for s in scope_statements(index, after):
        if s.order <= after.end_order:
            continue
        if name in s.loads:
            out.append(s)
        elif name in s.stores and (s.parent is None or id(s.parent) in outer or s.parent is after.parent):
            break
    return out


def statements_in(stmt: Stmt, index: ModuleIndex) -> list[Stmt]:
    return index.statements[stmt.order + 1: stmt.end_order + 1]




def _params(function: Stmt) -> set[str]:
    p = function.node.params
    return {x.name.value for x in (*p.posonly_params, *p.params, *p.kwonly_params)}
