"""Exact text spans of chosen nodes, from one pass of libcst's code generator.

libcst's PositionProvider computes a position for every node of the file (about two
parses' worth of work). Diagnostics and fixes need a handful: this codegen state
records only the requested nodes, with the indentation in force, and stops as soon
as the last of them is printed. Replacement code is printed with that indentation,
so fixes that add or wrap statements come out correctly indented.
"""
from __future__ import annotations

from contextlib import nullcontext
from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Callable, Iterable, Optional, Union

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
    def __init__(self, module: cst.Module, wanted: dict[int, cst.CSTNode], stop: bool = True) -> None:
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.length = 0
        self.wanted = wanted
        self.stop = stop  # raise _Done once every wanted node is printed
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
            if self.stop and len(self.spans) == len(self.wanted):
                raise _Done


def node_spans(module: cst.Module, nodes: Iterable[cst.CSTNode],
               memo: Optional["PrintMemo"] = None) -> dict[int, Span]:
    """id(node) -> (start, end, indent tokens) for each node found in the module.
    With `memo`, top-level statements it has printed before are not printed again."""
    wanted = {id(n): n for n in nodes}
    if not wanted:
        return {}
    if memo is not None and id(module) not in wanted:
        return memo.spans(module, wanted)
    state = _RecordingState(module, wanted)
    try:
        module._codegen(state)
    except _Done:
        pass
    return state.spans


@dataclass
class _Printed:
    stmt: cst.CSTNode                   # held, so that its id stays its own
    style: tuple[str, str]              # the module's default indent and newline
    length: int                         # length of its code
    spans: dict[int, Span]              # the nodes asked for so far, offsets from its start


class PrintMemo:
    """What was printed for one document, for its next version's tree, which reuses the
    statement objects whose text did not change (see splice).

    Spans inside top-level statements are kept per statement object: a top-level
    statement prints the same wherever it stands (no indentation is in force there), so
    only the changed ones are printed again, and the others move by the lengths before
    them (the lengths of the whole module's printing, so offsets are the same).

    The code of a fix's replacement is kept under the replacement's structure: its new
    nodes field by field, and the statements of the tree it reuses by identity (the
    entry holds their top-level statements, so that an id is never another node's,
    and is dropped with them). Printing is a function of that structure, the
    indentation and the module's style."""

    _MAX_RENDERS = 2048

    def __init__(self) -> None:
        self._printed: dict[int, _Printed] = {}
        self._renders: OrderedDict = OrderedDict()   # key -> (code, top-level statements, old)

    def spans(self, module: cst.Module, wanted: dict[int, cst.CSTNode]) -> dict[int, Span]:
        style = (module.default_indent, module.default_newline)
        state = _RecordingState(module, {}, stop=False)
        for line in module.header:
            line._codegen(state)
        out: dict[int, Span] = {}
        starts = []
        for stmt in module.body:
            printed = self._printed.get(id(stmt))
            fresh = printed is None or printed.stmt is not stmt or printed.style != style
            if fresh:
                printed = self._print(module, stmt, wanted, {})
            else:
                starts.append((state.length, printed))
            self._add(out, state.length, printed, wanted)
            state.length += printed.length
        missing = {k: n for k, n in wanted.items() if k not in out}
        for start, printed in starts:
            if not missing:
                break
            # A node a kept statement was not asked for before: print it again.
            asked = {**{k: None for k in printed.spans}, **missing}
            printed = self._print(module, printed.stmt, asked, printed.spans)
            self._add(out, start, printed, missing)
            missing = {k: n for k, n in missing.items() if k not in out}
        if missing:
            # Not inside a statement (the header, the footer): print the whole module.
            state = _RecordingState(module, missing)
            try:
                module._codegen(state)
            except _Done:
                pass
            out.update(state.spans)
        return out

    def keep(self, statements: Iterable[cst.CSTNode]) -> None:
        """Forget every statement but these (those of the trees kept for the next version)."""
        live = {id(s) for s in statements}
        self._printed = {k: p for k, p in self._printed.items() if k in live}
        for key in [k for k, (_, tops, _) in self._renders.items() if any(id(t) not in live for t in tops)]:
            del self._renders[key]

    def _print(self, module: cst.Module, stmt: cst.CSTNode, asked: dict, known: dict) -> _Printed:
        state = _RecordingState(module, asked, stop=False)
        stmt._codegen(state)
        printed = _Printed(stmt, (module.default_indent, module.default_newline), state.length,
                           {**known, **state.spans})
        self._printed[id(stmt)] = printed
        return printed

    @staticmethod
    def _add(out: dict, start: int, printed: _Printed, wanted: dict) -> None:
        for key, (a, b, indent) in printed.spans.items():
            if key in wanted:
                out[key] = (start + a, start + b, indent)

    def render(self, module: cst.Module, new, old: cst.CSTNode, indent: tuple[str, ...],
               top_of: Callable[[cst.CSTNode], Optional[cst.CSTNode]]) -> str:
        """`render(module, new, old, indent)`, printed once per structure; `top_of`
        gives the top-level statement of a statement of the module's tree (None for
        the others: new nodes)."""
        held: list = []
        try:
            shape = _shape(new, top_of, held)
        except TypeError:  # a field value that cannot be a key: just print it
            return render(module, new, old, indent)
        key = (shape, id(old) if isinstance(new, cst.RemovalSentinel) else None, indent,
               module.default_indent, module.default_newline)
        found = self._renders.get(key)
        if found is not None and (not isinstance(new, cst.RemovalSentinel) or found[2] is old):
            self._renders.move_to_end(key)
            return found[0]
        code = render(module, new, old, indent)
        self._renders[key] = (code, tuple({id(t): t for t in held}.values()), old)
        if len(self._renders) > self._MAX_RENDERS:
            self._renders.popitem(last=False)
        return code


_FIELDS: dict[type, tuple[str, ...]] = {}


def _shape(value, top_of: Callable[[cst.CSTNode], Optional[cst.CSTNode]], held: list):
    """A hashable stand-in for what printing `value` depends on (see PrintMemo);
    `held` gets the top-level statements of the tree's nodes it names by id."""
    if type(value) is str:
        return value   # the common leaf; never equal to the tuples below
    if isinstance(value, cst.CSTNode):
        top = top_of(value) if isinstance(value, _REUSED) else None
        if top is not None:
            held.append(top)
            return ("tree", id(value))
        t = type(value)
        names = _FIELDS.get(t)
        if names is None:
            names = _FIELDS[t] = tuple(f.name for f in fields(value))
        return (t, *[_shape(getattr(value, n), top_of, held) for n in names])
    if isinstance(value, (list, tuple)):
        return (type(value), *[_shape(v, top_of, held) for v in value])
    if isinstance(value, cst.FlattenSentinel):
        return (cst.FlattenSentinel, *[_shape(v, top_of, held) for v in value.nodes])
    hash(value)  # TypeError when it cannot be part of a key
    return (type(value), value)


# What a fix reuses whole from the tree; smaller nodes are keyed field by field.
_REUSED = (cst.BaseStatement, cst.BaseSmallStatement, cst.BaseSuite)


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
