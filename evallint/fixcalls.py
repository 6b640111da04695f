"""Building blocks for fixes that add a keyword argument to a call or a statement
after a small statement, keeping the call's layout (one line, or one argument per
line with a trailing comma)."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from .facts.index import Stmt
from .rule import Change


def add_keyword(call: cst.Call, name: str, value_code: str) -> cst.Call:
    """`f(a, b=1)` -> `f(a, b=1, name=value)`; a multi-line call with a trailing comma
    gets the new argument on its own line."""
    new = cst.Arg(value=cst.parse_expression(value_code), keyword=cst.Name(name),
                  equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
    args = list(call.args)
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    if isinstance(last.comma, cst.Comma):
        after = last.comma.whitespace_after
        if isinstance(after, cst.ParenthesizedWhitespace):
            between = call.whitespace_before_args if isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace) else after
            args[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=between))
        else:
            args[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=cst.SimpleWhitespace(" ")))
        new = new.with_changes(comma=cst.Comma(whitespace_after=after))
    return call.with_changes(args=[*args, new])


def line_of(stmt: Stmt) -> Optional[cst.SimpleStatementLine]:
    """The line of a small statement when it is alone on it."""
    line = stmt.line_node
    return line if line is not None and len(line.body) == 1 else None


def insert_after(stmt: Stmt, code: str) -> Optional[Change]:
    """A statement after `stmt` (a compound statement, or a small one alone on its
    line), at the same indentation; None when that cannot be done cleanly."""
    new = cst.SimpleStatementLine([cst.Expr(cst.parse_expression(code))])
    if stmt.line_node is not None:
        line = line_of(stmt)
        if line is None:
            return None
        return Change(line, cst.FlattenSentinel([line, new]))
    return Change(stmt.node, cst.FlattenSentinel([stmt.node, new]))


def split_line(stmt: Stmt, first: cst.BaseSmallStatement, rest: cst.BaseSmallStatement) -> Optional[Change]:
    """Replace a small statement alone on its line by two lines: `first`, then `rest`
    (which keeps the line's trailing comment); comments above stay above."""
    line = line_of(stmt)
    if line is None:
        return None
    head = cst.SimpleStatementLine([first], leading_lines=line.leading_lines)
    tail = line.with_changes(body=[rest], leading_lines=())
    return Change(line, cst.FlattenSentinel([head, tail]))
