"""Building blocks for fixes that add, wrap or remove statements.

Rules describe fixes as tree changes; these helpers keep comments and blank lines
above a statement attached to the right place.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from .facts.index import Stmt
from .rule import Change


def statement(code: str) -> cst.SimpleStatementLine:
    return cst.SimpleStatementLine([cst.Expr(cst.parse_expression(code))])


def _line_unit(stmt: Stmt):
    """The node that is a whole line of code: a compound statement, or the line of a
    small statement that stands alone on it (None when it shares its line)."""
    line = stmt.line_node
    if line is None:
        # a small statement in a one-line suite (`if x: y = f()`) is not a line of its own
        return stmt.node if isinstance(stmt.node, cst.BaseCompoundStatement) else None
    return line if len(line.body) == 1 else None


def insert_around(stmt: Stmt, before: list[str] = (), after: list[str] = ()) -> Optional[Change]:
    """Insert simple statements before and/or after a statement (a compound one, or a
    small one alone on its line; None otherwise). The comments above it move above
    the first inserted line."""
    node = _line_unit(stmt)
    if node is None:
        return None
    original = node
    first = [statement(c) for c in before]
    if first:
        first[0] = first[0].with_changes(leading_lines=node.leading_lines)
        node = node.with_changes(leading_lines=())
    return Change(original, cst.FlattenSentinel([*first, node, *(statement(c) for c in after)]))


def wrap_in_with(stmt: Stmt, item_code: str) -> Optional[Change]:
    """`for ...` -> `with <item>:` around it (the body is re-indented by libcst); a
    small statement alone on its line is wrapped the same way (None otherwise)."""
    node = _line_unit(stmt)
    if node is None:
        return None
    original = node
    inner = node.with_changes(leading_lines=())
    wrapped = cst.With(
        items=[cst.WithItem(cst.parse_expression(item_code))],
        body=cst.IndentedBlock([inner]),
        leading_lines=node.leading_lines,
    )
    return Change(original, wrapped)


def remove(stmt: Stmt) -> Change:
    """Remove a small statement (its whole line when it is alone on it)."""
    line = stmt.line_node
    if line is not None and len(line.body) == 1:
        return Change(line, cst.RemoveFromParent())
    return Change(stmt.node, cst.RemoveFromParent())
