"""Exact text spans of chosen nodes, from one pass of libcst's code generator.

libcst's PositionProvider computes a position for every node of the file (about two
parses' worth of work). Diagnostics and fixes need a handful: this codegen state
records only the requested nodes, with the indentation in force, and stops as soon
as the last of them is printed. Replacement code is printed with that indentation,
so fixes that add or wrap statements come out correctly indented.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Iterable, Union

import libcst as cst
from libcst._nodes.internal import CodegenState

Span = tuple[int, int, tuple[str, ...]]  # start offset, end offset, indent tokens


class _Done(Exception):
    pass


_NO_POSITION = nullcontext()


class _PlainState(CodegenState):
    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        # libcst's own is a generator that does nothing in a plain state; made for
        # every node printed, it was a third of the codegen's time.
        return _NO_POSITION


class _RecordingState(_PlainState):
    def __init__(self, module: cst.Module, wanted: dict[int, cst.CSTNode]) -> None:
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.length = 0
        self.wanted = wanted
        self.open: dict[int, tuple[int, tuple[str, ...]]] = {}
        self.spans: dict[int, Span] = {}

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self.length += len(value)

    def add_indent_tokens(self) -> None:
        self.tokens.extend(self.indent_tokens)
        self.length += sum(map(len, self.indent_tokens))

    def pop_trailing_newline(self) -> None:
        if self.tokens:
            self.length -= len(self.tokens.pop())

    def before_codegen(self, node: cst.CSTNode) -> None:
        key = id(node)
        if key in self.wanted:
            self.open[key] = (self.length, tuple(self.indent_tokens))

    def after_codegen(self, node: cst.CSTNode) -> None:
        key = id(node)
        if key in self.open:
            start, indent = self.open.pop(key)
            self.spans[key] = (start, self.length, indent)
            if len(self.spans) == len(self.wanted):
                raise _Done


def node_spans(module: cst.Module, nodes: Iterable[cst.CSTNode]) -> dict[int, Span]:
    """id(node) -> (start, end, indent tokens) for each node found in the module."""
    wanted = {id(n): n for n in nodes}
    if not wanted:
        return {}
    state = _RecordingState(module, wanted)
    try:
        module._codegen(state)
    except _Done:
        pass
    return state.spans


def render(module: cst.Module, new: Union[cst.CSTNode, cst.FlattenSentinel, cst.RemovalSentinel],
           old: cst.CSTNode, indent: tuple[str, ...]) -> str:
    """The code of a replacement, printed at the indentation of the node it replaces."""
    if isinstance(new, cst.RemovalSentinel):
        # Keep the comments above a removed statement: never lose content.
        nodes = [cst.EmptyLine(indent=l.indent, whitespace=l.whitespace, comment=l.comment, newline=l.newline)
                 for l in getattr(old, "leading_lines", ())]
    elif isinstance(new, cst.FlattenSentinel):
        nodes = list(new.nodes)
    else:
        nodes = [new]
    state = _PlainState(default_indent=module.default_indent, default_newline=module.default_newline,
                        indent_tokens=list(indent))
    for n in nodes:
        n._codegen(state)
    return "".join(state.tokens)


def syntactic_start(text: str, start: int, end: int, node: cst.CSTNode) -> int:
    """Skip the blank and comment lines and the indentation that a statement's span
    starts with, so the finding points at the statement itself."""
    if not isinstance(node, (cst.BaseCompoundStatement, cst.SimpleStatementLine)):
        return start
    pos = start
    while pos < end:
        line_end = text.find("\n", pos, end)
        line = text[pos: line_end if line_end != -1 else end]
        stripped = line.lstrip(" \t\f")
        if stripped and not stripped.startswith("#") and stripped.strip() != "\\":
            return pos + len(line) - len(stripped)
        if line_end == -1:
            break
        pos = line_end + 1
    return start
