"""A module as replay cuts it: the facts index grouped into units (a statement line or
a compound statement, what replay keeps or drops whole), their names and calls, the
unit at a source line, and the imports the child may run."""
from __future__ import annotations

from functools import cached_property
from typing import Optional

import libcst as cst

from ..facts import ModuleFacts
from ..facts.exprs import dotted
from ..facts.flow import statements_in
from ..facts.index import Stmt
from ..spans import node_spans, syntactic_start
from ..textpos import LineIndex
from .names import NameUse, use_of

# Modules replay may import in the child: standard or numeric, no side effects.
IMPORTABLE = ("torch", "torchvision", "math", "statistics", "numpy", "tqdm", "sklearn", "time",
              "collections", "itertools", "functools", "operator", "random")


class RegionError(Exception):
    """The finding's region cannot be cut; the message is the reason shown to users."""


def unit(s: Stmt) -> cst.BaseStatement:
    return s.line_node or s.node


def smalls(node: cst.BaseStatement) -> list[cst.BaseSmallStatement]:
    return list(node.body) if isinstance(node, cst.SimpleStatementLine) else []


def code_of(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _heads(block: list[Stmt]) -> list[Stmt]:
    """One Stmt per unit of a block: compound statements and each line's first statement."""
    return [s for s in block if s.line_node is None or s.line_node.body[0] is s.node]


def before(s: Stmt) -> list[cst.BaseStatement]:
    """The units before `s` (a unit's head) in its block."""
    return [unit(x) for x in _heads(s.block[: s.index])]


def after(s: Stmt) -> list[cst.BaseStatement]:
    return [unit(x) for x in _heads(s.block[s.index + 1:])]


def block_units(s: Stmt) -> list[cst.BaseStatement]:
    return [unit(x) for x in _heads(s.block)]


def path(s: Stmt) -> list[Stmt]:
    """`s` and the compound statements around it, outermost first."""
    return [*reversed(list(s.ancestors())), s]


class Tree:
    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self.facts = ModuleFacts(module)
        self.index = self.facts.index
        self._uses: dict[int, NameUse] = {}
        self._positions: Optional[dict[int, tuple[int, int, int]]] = None

    @classmethod
    def parse(cls, text: str) -> "Tree":
        try:
            return cls(cst.parse_module(text))
        except cst.ParserSyntaxError as exc:
            raise RegionError(f"the file does not parse ({exc.message})") from None

    # Units ------------------------------------------------------------------------
    def stmts(self, node: cst.BaseStatement) -> list[Stmt]:
        """The facts records of everything in a unit."""
        if isinstance(node, cst.SimpleStatementLine):
            return [self.index.stmt(small) for small in node.body]
        s = self.index.stmt(node)
        return [s, *statements_in(s, self.index)]

    def use(self, node: cst.BaseStatement) -> NameUse:
        got = self._uses.get(id(node))
        if got is None:
            got = self._uses[id(node)] = use_of(self.stmts(node), node)
        return got

    def calls(self, node: cst.BaseStatement) -> list[cst.Call]:
        return [c for s in self.stmts(node) for c in s.calls]

    @cached_property
    def heads(self) -> list[Stmt]:
        """Every unit's head in source order; statements of one-line suites (`if x: y`)
        are part of their compound statement, not units."""
        return [s for s in _heads(self.index.statements)
                if not (s.line_node is None and isinstance(s.node, cst.BaseSmallStatement))]

    def local_defs(self) -> set[str]:
        """Functions and classes of the file itself: replay never runs the module's code."""
        return {s.node.name.value for s in self.index.top if isinstance(s.node, (cst.FunctionDef, cst.ClassDef))}

    # Positions --------------------------------------------------------------------
    def _position(self, s: Stmt) -> tuple[int, int, int]:
        """(first line, its column, last line) of a unit, as libcst positions count them."""
        if self._positions is None:
            heads = self.heads
            code = self.module.code
            lines = LineIndex(code)
            # A decorated definition starts at its `def`/`class` line.
            names = [unit(h).name for h in heads if getattr(unit(h), "decorators", ())]
            spans = node_spans(self.module, [unit(h) for h in heads] + names)
            self._positions = {}
            for h in heads:
                node = unit(h)
                a, b, _ = spans[id(node)]
                line, col = lines.position(syntactic_start(code, a, b, node))
                if getattr(node, "decorators", ()):
                    line, col = lines.position(spans[id(node.name)][0])
                end = len(code[a:b].rstrip(" \t\r\n\f\\")) + a
                self._positions[id(node)] = (line, col, lines.position(end - 1)[0])
        return self._positions[id(unit(s))]

    def start(self, s: Stmt) -> tuple[int, int]:
        line, col, _ = self._position(s)
        return line, col

    def at_line(self, line: int) -> Optional[Stmt]:
        """The innermost unit whose lines hold `line`."""
        found = None
        for h in self.heads:
            first, _, last = self._position(h)
            if first <= line <= last:
                found = h
        return found

    def first_from(self, start: tuple[int, int], kind: type) -> Optional[Stmt]:
        """The first unit of type `kind` starting at or after `start`."""
        return next((h for h in self.heads if isinstance(unit(h), kind) and self.start(h) >= start), None)

    # Imports ----------------------------------------------------------------------
    def imports(self) -> tuple[list[str], set[str]]:
        """Import statements of allow-listed modules, one name a line, and the local
        names they bind."""
        keep: list[str] = []
        for s in self.index.statements:
            node = s.node
            if isinstance(node, cst.Import):
                for alias in node.names:
                    full = dotted(alias.name) or ""
                    if full.split(".")[0] in IMPORTABLE:
                        keep.append(f"import {full}" + (f" as {alias.asname.name.value}" if alias.asname else ""))
            elif isinstance(node, cst.ImportFrom) and not node.relative and node.module is not None \
                    and not isinstance(node.names, cst.ImportStar):
                base = dotted(node.module) or ""
                if base.split(".")[0] not in IMPORTABLE:
                    continue
                for alias in node.names:
                    name = dotted(alias.name)
                    local = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) \
                        else name
                    keep.append(f"from {base} import {name}" + (f" as {local}" if local != name else ""))
        modules = {local for local, full in self.facts.aliases.items() if full.split(".")[0] in IMPORTABLE}
        return list(dict.fromkeys(keep)), modules

    def origin(self, name: str) -> Optional[str]:
        """The module an imported name comes from (to explain names replay will not import)."""
        return self.facts.aliases.get(name)
