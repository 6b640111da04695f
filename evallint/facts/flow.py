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
    owner = _class_scope(at)
    stores = _scope_stores(index, owner, at.function)
    found = None
    for s in reversed(stores.get(name, ())):
        if s.order < at.order and not s.contains(at):
            found = s
            break
    if found is None and at.function is not None and name not in stores:
        if name in _params(at.function):
            return None
        module_stores = _scope_stores(index, None, None).get(name)
        if module_stores:
            found = module_stores[-1]
    return found


def _scope_stores(index: ModuleIndex, owner: Optional[Stmt], function: Optional[Stmt]) -> dict[str, list[Stmt]]:
    """name -> the statements of a scope (`scope_statements`: a class body run directly,
    else a function or the top level) that store it, in order. Memoised on the index:
    assignment look-ups would otherwise scan the whole scope per question."""
    key = ("class", id(owner)) if owner is not None else ("function", id(function))
    table = index.scope_stores.get(key)
    if table is None:
        if owner is not None:
            stmts = [s for s in index.statements[owner.order + 1: owner.end_order + 1]
                     if s.function is function and _class_scope(s) is owner]
        else:
            stmts = index.function_body(function)
        table = {}
        for s in stmts:
            for n in s.stores:
                table.setdefault(n, []).append(s)
        index.scope_stores[key] = table
    return table


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


def reached_reads_after(index: ModuleIndex, name: str, after: Stmt) -> list[Stmt]:
    """Statements after `after` in its scope that read the value `name` has when
    `after` ends (reaching definitions): a read that follows a store on every path
    from `after` to it (in any block: a later loop's `x = 0` reset included) reads
    that store instead. Loop and `with` bodies are taken to run; `if`/`try`
    branches may not. Notebook cells are one module in cell order, so this holds
    across cells too."""
    out = []
    kills: list[Stmt] = []
    for s in scope_statements(index, after):
        if s.order <= after.end_order:
            continue
        if name in s.loads and not any(_runs_before_on_every_path(t, s) for t in kills):
            out.append(s)
        if name in s.stores:
            kills.append(s)
    return out


def _runs_before_on_every_path(t: Stmt, s: Stmt) -> bool:
    """Does `t` (earlier in source order) run on every path that reaches `s`?"""
    chain = {id(x) for x in s.ancestors()}
    chain.add(id(s))
    node = t
    while node.parent is not None and id(node.parent) not in chain:
        parent = node.parent
        if isinstance(parent.node, (cst.If, cst.Try, cst.TryStar, cst.Match)):
            return False  # a branch that may not run
        if isinstance(parent.node, (cst.For, cst.While)) and node.block is not parent.blocks.get("body"):
            return False  # a loop's `else:` clause (skipped by `break`)
        node = parent
    if id(node) in chain:
        return True  # `t` holds `s` (a loop header that binds the name)
    common = node.parent
    x = s
    while x.parent is not common:
        x = x.parent
    return x.block is node.block


def statements_in(stmt: Stmt, index: ModuleIndex) -> list[Stmt]:
    return index.statements[stmt.order + 1: stmt.end_order + 1]




def _params(function: Stmt) -> set[str]:
    p = function.node.params
    return {x.name.value for x in (*p.posonly_params, *p.params, *p.kwonly_params)}
