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


def with_keyword(call: cst.Call, name: str, value_code: str) -> cst.Call:
    """`f(a, k=x)` -> `f(a, k=<value>)`, or `f(a)` -> `f(a, k=<value>)` (appended last,
    after a trailing comma when the call has one)."""
    value = cst.parse_expression(value_code)
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return call.with_changes(args=[a.with_changes(value=value) if a is arg else a for a in call.args])
    new = cst.Arg(value, keyword=cst.Name(name),
                  equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
    args = list(call.args)
    if args and args[-1].comma is cst.MaybeSentinel.DEFAULT:
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    elif args and isinstance(args[-1].comma, cst.Comma):
        # `f(a,\n)`: the new argument takes the old one's comma, a plain comma goes before it
        new = new.with_changes(comma=args[-1].comma)
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=_spacing(call, args)))
    return call.with_changes(args=[*args, new])


def _spacing(call: cst.Call, args: list):
    """The line break and indentation between two arguments of a call."""
    if len(args) >= 2 and isinstance(args[-2].comma, cst.Comma):
        return args[-2].comma.whitespace_after
    if isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
        return call.whitespace_before_args
    return cst.SimpleWhitespace(" ")
