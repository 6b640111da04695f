"""Which plain names a piece of code reads and which it binds (no scopes: a region is
one flat block of statements, so a set-level answer is what the cutter needs)."""
from __future__ import annotations

import builtins
from dataclasses import dataclass

import libcst as cst

BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class NameUse:
    reads: frozenset[str]
    writes: frozenset[str]
    aug: frozenset[str]  # `x += ...` targets: read and written (not in `writes`)


class _Collector(cst.CSTVisitor):
    def __init__(self) -> None:
        self.all: list[cst.Name] = []
        self.skip: set[int] = set()     # Name nodes that are not variables (attrs, keywords)
        self.bound: set[int] = set()    # Name nodes in binding positions
        self.aug: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.all.append(node)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.skip.add(id(node.attr))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.skip.add(id(node.keyword))

    def visit_Param(self, node: cst.Param) -> None:
        self.bound.add(id(node.name))

    def visit_ImportAlias(self, node: cst.ImportAlias) -> bool:
        target = node.asname.name if node.asname else node.name
        while isinstance(target, cst.Attribute):
            target = target.value
        if isinstance(target, cst.Name):
            self.bound.add(id(target))
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.module is not None:
            for n in _names_in(node.module):
                self.skip.add(id(n))

    def visit_Import(self, node: cst.Import) -> None:
        return None

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.bound.add(id(node.name))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.bound.add(id(node.name))

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._bind(t.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bind(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name):
            self.aug.add(node.target.value)
            self.skip.add(id(node.target))

    def visit_For(self, node: cst.For) -> None:
        self._bind(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bind(node.target)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind(node.asname.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(node.target)

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if node.name is not None:
            self._bind(node.name.name)

    def _bind(self, target: cst.CSTNode) -> None:
        if isinstance(target, cst.Name):
            self.bound.add(id(target))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._bind(el.value)
        elif isinstance(target, cst.StarredElement):
            self._bind(target.value)


def _names_in(node: cst.CSTNode) -> list[cst.Name]:
    out: list[cst.Name] = []

    class V(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            out.append(n)

    node.visit(V())
    return out


def name_use(node: cst.CSTNode) -> NameUse:
    c = _Collector()
    node.visit(c)
    reads, writes = set(), set()
    for n in c.all:
        if id(n) in c.skip:
            continue
        (writes if id(n) in c.bound else reads).add(n.value)
    return NameUse(frozenset(reads), frozenset(writes), frozenset(c.aug))


def free_names(nodes: list[cst.CSTNode]) -> list[str]:
    """Names read by a sequence of statements before any of them binds them, in order
    of first use (an `x += 1` with no earlier binding reads a free `x`)."""
    bound: set[str] = set()
    free: list[str] = []
    for node in nodes:
        use = name_use(node)
        # Within one statement (a loop body), a name bound anywhere counts as bound.
        for name in sorted((use.reads | use.aug) - use.writes):
            if name not in bound and name not in free:
                free.append(name)
        bound |= use.writes
    return free
