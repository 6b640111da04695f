"""The single traversal of a module: statements in context, names, calls.

Every statement (small or compound) becomes a `Stmt` that knows its block, its
enclosing compound statements and function, its place in source order, and the
names its own expressions read and write (nested blocks belong to their own
statements). Calls and binary operations are indexed with their statement.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from .. import fastnodes  # noqa: F401 - node isinstance checks without the ABC machinery
from .walk import NODE, SEQUENCE, _kinds, child_fields, value_kind

# Fields of compound statements that hold nested blocks (not header expressions).
_BLOCK_FIELDS = {"body", "orelse", "handlers", "finalbody", "cases"}


@dataclass(eq=False)
class Stmt:
    node: cst.CSTNode
    parent: Optional["Stmt"]          # the enclosing compound statement
    block: list["Stmt"]               # the block this statement is in
    index: int                        # its place in that block
    function: Optional["Stmt"]        # innermost enclosing FunctionDef
    order: int                        # pre-order number: source order
    end_order: int = 0                # last order number inside it
    loads: set[str] = field(default_factory=set)
    stores: set[str] = field(default_factory=set)
    calls: list[cst.Call] = field(default_factory=list)
    blocks: dict[str, list["Stmt"]] = field(default_factory=dict)
    line_node: Optional[cst.SimpleStatementLine] = None  # for small statements

    def ancestors(self):
        s = self.parent
        while s is not None:
            yield s
            s = s.parent

    def contains(self, other: "Stmt") -> bool:
        return self.order < other.order <= self.end_order

    @property
    def is_function(self) -> bool:
        return isinstance(self.node, cst.FunctionDef)


class ModuleIndex:
    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self.statements: list[Stmt] = []
        self.stmt_of: dict[int, Stmt] = {}        # id(node) -> Stmt, statements only
        self.calls: list[tuple[cst.Call, Stmt]] = []
        self.binops: list[tuple[cst.BinaryOperation, Stmt]] = []
        self.top: list[Stmt] = []
        self._bodies: dict[int, list[Stmt]] = {}
        # (scope kind, id) -> name -> storing statements, filled by flow.last_assignment_before
        self.scope_stores: dict[tuple, dict[str, list[Stmt]]] = {}
        self._build()

    # The traversal --------------------------------------------------------------
    def _build(self) -> None:
        # Work items, popped in source order: ("block", nodes, parent, function, target,
        # label), ("stmt", node, parent, function, target, line), ("close", stmt). A
        # statement's own expressions are walked right away (`_exprs`): they come before
        # its nested blocks in source order.
        stack: list[tuple] = [("block", self.module.body, None, None, self.top, None)]
        while stack:
            item = stack.pop()
            kind = item[0]
            if kind == "stmt":
                self._stmt(item, stack)
            elif kind == "close":
                item[1].end_order = len(self.statements) - 1
            else:
                _, nodes, parent, function, target, label = item
                if parent is not None and label is not None:
                    parent.blocks[label] = target
                flat: list[tuple] = []
                for n in nodes:
                    if isinstance(n, cst.SimpleStatementLine):
                        flat.extend((small, n) for small in n.body)
                    else:
                        flat.append((n, None))
                for n, line in reversed(flat):
                    stack.append(("stmt", n, parent, function, target, line))

    def _stmt(self, item: tuple, stack: list) -> None:
        _, node, parent, function, target, line = item
        stmt = Stmt(node=node, parent=parent, block=target, index=len(target),
                    function=function, order=len(self.statements), line_node=line)
        target.append(stmt)
        self.statements.append(stmt)
        self.stmt_of[id(node)] = stmt
        inner_function = stmt if isinstance(node, cst.FunctionDef) else function
        # Later items first on the stack: close marker, nested blocks.
        stack.append(("close", stmt))
        blocks = list(_nested_blocks(node))
        for label, body in reversed(blocks):
            stack.append(("block", body, stmt, inner_function, [], label))
        self._exprs(stmt, list(_header_children(node)))

    def _exprs(self, owner: Stmt, roots: list) -> None:
        """Walk a statement's own expressions in pre-order: the names they read and
        write, their calls and binary operations. Mode is "load", "store", "both" or
        "skip" (names bound by comprehensions and lambdas are local to them)."""
        loads, stores = owner.loads, owner.stores
        own_calls, calls, binops = owner.calls, self.calls, self.binops
        kinds, plans = _kinds, _plans
        Name, Call, BinaryOperation = cst.Name, cst.Call, cst.BinaryOperation
        stack = roots[::-1]
        pop, push = stack.pop, stack.append
        while stack:
            node, mode = pop()
            t = type(node)
            if t is Name:
                if mode == "load":
                    loads.add(node.value)
                elif mode == "store":
                    stores.add(node.value)
                elif mode == "both":
                    loads.add(node.value)
                    stores.add(node.value)
                continue
            if t is Call:
                own_calls.append(node)
                calls.append((node, owner))
            elif t is BinaryOperation:
                binops.append((node, owner))
            plan = plans.get(t)
            if plan is None:
                plan = _plan(t)
            keeps_store, fields = plan
            child_mode = mode if keeps_store or mode not in ("store", "both") else "load"  # a.b = ...: a is read
            for name, forced in fields:
                value = getattr(node, name)
                mode_here = forced or child_mode
                vt = type(value)
                kind = kinds.get(vt)
                if kind is None:
                    kind = value_kind(vt)
                if kind == NODE:
                    push((value, mode_here))
                elif kind == SEQUENCE:
                    for v in reversed(value):
                        vt = type(v)
                        k = kinds.get(vt)
                        if (k if k is not None else value_kind(vt)) == NODE:
                            push((v, mode_here))

    # Queries --------------------------------------------------------------------
    def stmt(self, node: cst.CSTNode) -> Optional[Stmt]:
        return self.stmt_of.get(id(node))

    def function_body(self, function: Optional[Stmt]) -> list[Stmt]:
        """All statements of a function (or the module's top level), in order,
        not descending into nested functions or classes. Memoised: flow queries ask
        for the same scopes many times; callers must not modify the list."""
        key = id(function)
        body = self._bodies.get(key)
        if body is None:
            if function is None:
                body = [s for s in self.statements if s.function is None and not _in_class(s)]
            else:
                body = [s for s in self.statements[function.order + 1: function.end_order + 1]
                        if s.function is function]
            self._bodies[key] = body
        return body


# Per node type, how `_exprs` walks it: (whether a store passes to its children, as
# for the elements of `a, b = ...`; its child fields in push order, i.e. reversed, each
# with the mode it forces or None). Worked out once per type, not once per node.
_plans: dict[type, tuple[bool, tuple[tuple[str, Optional[str]], ...]]] = {}
_STORE_CONTAINERS = (cst.Tuple, cst.List, cst.StarredElement, cst.Element)


def _plan(t: type) -> tuple[bool, tuple[tuple[str, Optional[str]], ...]]:
    fields = []
    for name in reversed(child_fields(t)):
        forced = None
        if (t is cst.CompFor and name == "target") or (t is cst.Param and name == "name"):
            forced = "skip"  # comprehension and lambda variables are local to them
        elif t is cst.NamedExpr and name == "target":
            forced = "store"
        fields.append((name, forced))
    plan = _plans[t] = (t in _STORE_CONTAINERS, tuple(fields))
    return plan


def _in_class(stmt: Stmt) -> bool:
    return any(isinstance(a.node, cst.ClassDef) for a in stmt.ancestors())


def _nested_blocks(node: cst.CSTNode):
    """(label, statements) for each block nested in a compound statement."""
    if isinstance(node, (cst.For, cst.While)):
        yield "body", _block_statements(node.body)
        if node.orelse is not None:
            yield "orelse", _block_statements(node.orelse.body)
    elif isinstance(node, cst.If):
        yield "body", _block_statements(node.body)
        if isinstance(node.orelse, cst.If):
            yield "orelse", [node.orelse]
        elif node.orelse is not None:
            yield "orelse", _block_statements(node.orelse.body)
    elif isinstance(node, (cst.Try, cst.TryStar)):
        yield "body", _block_statements(node.body)
        for i, h in enumerate(node.handlers):
            yield f"handler{i}", _block_statements(h.body)
        if node.orelse is not None:
            yield "orelse", _block_statements(node.orelse.body)
        if node.finalbody is not None:
            yield "finalbody", _block_statements(node.finalbody.body)
    elif isinstance(node, (cst.With, cst.FunctionDef, cst.ClassDef)):
        yield "body", _block_statements(node.body)
    elif isinstance(node, cst.Match):
        for i, case in enumerate(node.cases):
            yield f"case{i}", _block_statements(case.body)


def _block_statements(block: cst.BaseSuite):
    return list(block.body)


def _header_children(node: cst.CSTNode):
    """(expression, mode) pairs of a statement's own expressions."""
    t = type(node)
    if t is cst.Assign:
        for target in node.targets:
            yield target.target, "store"
        yield node.value, "load"
    elif t is cst.AugAssign:
        yield node.target, "both"
        yield node.value, "load"
    elif t is cst.AnnAssign:
        yield node.target, "store"
        yield node.annotation, "load"
        if node.value is not None:
            yield node.value, "load"
    elif t is cst.For:
        yield node.target, "store"
        yield node.iter, "load"
    elif t is cst.With:
        for item in node.items:
            yield item.item, "load"
            if item.asname is not None:
                yield item.asname.name, "store"
    elif t is cst.FunctionDef:
        yield node.name, "store"
        for d in node.decorators:
            yield d.decorator, "load"
        yield node.params, "load"
        if node.returns is not None:
            yield node.returns.annotation, "load"
    elif t is cst.ClassDef:
        yield node.name, "store"
        for d in node.decorators:
            yield d.decorator, "load"
        for a in (*node.bases, *node.keywords):
            yield a.value, "load"
    elif t in (cst.Import, cst.ImportFrom):
        return
    elif t in (cst.Try, cst.TryStar):
        for h in node.handlers:
            if h.type is not None:
                yield h.type, "load"
            if h.name is not None:
                yield h.name.name, "store"
    elif t is cst.Match:
        yield node.subject, "load"
    else:
        for name in child_fields(t):
            if name in _BLOCK_FIELDS:
                continue
            value = getattr(node, name)
            kind = value_kind(type(value))
            if kind == NODE:
                yield value, "load"
            elif kind == SEQUENCE:
                for v in value:
                    if value_kind(type(v)) == NODE:
                        yield v, "load"
