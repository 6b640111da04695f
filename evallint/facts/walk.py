"""Cheap, non-recursive access to the semantic children of libcst nodes.

libcst's own `children` and visitor dispatch are several times slower than a plain
walk, and recursion breaks on deeply nested code (the stdlib nests string
concatenations over 1,000 deep). We read the dataclass fields directly, skipping
whitespace, punctuation and the names that are not variables (attribute names,
keyword names).
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import libcst as cst

_PUNCTUATION = {
    "lpar", "rpar", "comma", "semicolon", "colon", "equal", "dot", "leading_lines",
    "lines_after_decorators", "header", "footer", "trailing_whitespace", "lbracket",
    "rbracket", "lbrace", "rbrace", "operator", "star", "asynchronous", "newline",
    "whitespace", "at", "arrow", "await_", "default_comma", "prefix",
}
# (node type, field) pairs holding names that are not variables.
_NOT_VARIABLES = {
    (cst.Attribute, "attr"), (cst.Arg, "keyword"), (cst.FunctionDef, "name"),
    (cst.ClassDef, "name"), (cst.ImportAlias, "name"), (cst.ImportFrom, "module"),
    (cst.ImportAlias, "asname"), (cst.Global, "names"), (cst.Nonlocal, "names"),
}

_fields_cache: dict[type, tuple[str, ...]] = {}


def child_fields(cls: type) -> tuple[str, ...]:
    fields = _fields_cache.get(cls)
    if fields is None:
        fields = tuple(
            f.name for f in dataclasses.fields(cls)
            if f.name not in _PUNCTUATION and not f.name.startswith("whitespace")
            and (cls, f.name) not in _NOT_VARIABLES
        )
        _fields_cache[cls] = fields
    return fields


# type -> NODE, SEQUENCE or OTHER. `isinstance(x, cst.CSTNode)` goes through the ABC
# machinery (CSTNode is an ABC): a dict lookup by exact type is several times cheaper.
OTHER, NODE, SEQUENCE = 0, 1, 2
_kinds: dict[type, int] = {}


def value_kind(t: type) -> int:
    kind = _kinds.get(t)
    if kind is None:
        kind = NODE if issubclass(t, cst.CSTNode) else SEQUENCE if issubclass(t, (list, tuple)) else OTHER
        _kinds[t] = kind
    return kind


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The semantic children of a node, in field order."""
    kinds = _kinds
    for name in child_fields(type(node)):
        value = getattr(node, name)
        kind = kinds.get(type(value))
        if kind is None:
            kind = value_kind(type(value))
        if kind == NODE:
            yield value
        elif kind == SEQUENCE:
            for item in value:
                k = kinds.get(type(item))
                if (k if k is not None else value_kind(type(item))) == NODE:
                    yield item


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Pre-order walk without recursion (`children` inlined: the facts walk millions
    of nodes a run, and a generator per node costs more than the visit)."""
    stack = [node]
    pop, push = stack.pop, stack.append
    kinds, fields_of = _kinds, _fields_cache
    while stack:
        current = pop()
        yield current
        t = type(current)
        fields = fields_of.get(t)
        if fields is None:
            fields = child_fields(t)
        for name in reversed(fields):
            value = getattr(current, name)
            vt = type(value)
            kind = kinds.get(vt)
            if kind is None:
                kind = value_kind(vt)
            if kind == NODE:
                push(value)
            elif kind == SEQUENCE:
                for item in reversed(value):
                    it = type(item)
                    k = kinds.get(it)
                    if (k if k is not None else value_kind(it)) == NODE:
                        push(item)


def names_in(node: cst.CSTNode) -> set[str]:
    return {n.value for n in walk(node) if isinstance(n, cst.Name)}


def own_expressions(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The nodes of a statement's own expressions: a small statement whole, only the
    header of a compound one (`for ... in <iter>`, `if <test>`, `while <test>`)."""
    if isinstance(node, cst.For):
        yield from walk(node.iter)
    elif isinstance(node, (cst.If, cst.While)):
        yield from walk(node.test)
    elif not isinstance(node, cst.BaseCompoundStatement):
        yield from walk(node)
