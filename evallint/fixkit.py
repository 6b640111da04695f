"""Building blocks for fixes that add, wrap or remove statements.

Rules describe fixes as tree changes; these helpers keep comments and blank lines
above a statement attached to the right place.
"""
from __future__ import annotations

import libcst as cst

from .facts.index import Stmt
from .rule import Change


def statement(code: str) -> cst.SimpleStatementLine:
    return cst.SimpleStatementLine([cst.Expr(cst.parse_expression(code))])


def insert_around(stmt: Stmt, before: list[str] = (), after: list[str] = ()) -> Change:
    """Insert simple statements before and/or after a compound statement. The comments
    above it move above the first inserted line."""
    node = stmt.node
    first = [statement(c) for c in before]
    if first:
        first[0] = first[0].with_changes(leading_lines=node.leading_lines)
        node = node.with_changes(leading_lines=())
    return Change(stmt.node, cst.FlattenSentinel([*first, node, *(statement(c) for c in after)]))


def opening_withs(stmt: Stmt) -> Stmt:
    """The outermost `with` that opens straight onto `stmt` (each `with` on the way up
    has it, or the `with` below, as its first statement), else `stmt` itself. A set-up
    call such as `net.eval()` goes before it, so that fixing in two passes (the loop
    wrapped in `with torch.no_grad():` first) gives the same file as fixing at once."""
    target = stmt
    while target.parent is not None and isinstance(target.parent.node, cst.With) and target.index == 0:
        target = target.parent
    return target


def wrap_in_with(stmt: Stmt, item_code: str) -> Change:
    """`for ...` -> `with <item>:` around it (the body is re-indented by libcst)."""
    node = stmt.node
    inner = node.with_changes(leading_lines=())
    wrapped = cst.With(
        items=[cst.WithItem(cst.parse_expression(item_code))],
        body=cst.IndentedBlock([inner]),
        leading_lines=node.leading_lines,
    )
    return Change(stmt.node, wrapped)


def remove(stmt: Stmt) -> Change:
    """Remove a small statement (its whole line when it is alone on it)."""
    line = stmt.line_node
    if line is not None and len(line.body) == 1:
        return Change(line, cst.RemoveFromParent())
    return Change(stmt.node, cst.RemoveFromParent())
