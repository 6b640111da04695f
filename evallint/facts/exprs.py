"""Small, pure helpers over libcst expressions."""
from __future__ import annotations

from typing import Optional

import libcst as cst


def dotted(expr: cst.CSTNode) -> Optional[str]:
    """`a.b.c` for Name/Attribute chains, else None."""
    if type(expr) is cst.Name:  # the common case, asked hundreds of thousands of times a run
        return expr.value
    parts = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if isinstance(expr, cst.Name):
        parts.append(expr.value)
        return ".".join(reversed(parts))
    return None


def last_part(name: Optional[str]) -> str:
    return name.rsplit(".", 1)[-1] if name else ""


def method_call(node: cst.CSTNode) -> Optional[tuple[cst.BaseExpression, str]]:
    """`obj.meth(...)` -> (obj, "meth")."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        return node.func.value, node.func.attr.value
    return None


def strip_method_chain(expr, methods) -> Optional[cst.Call]:
    """`Net().to(device).eval()` -> `Net()`: the call under a chain of `methods`."""
    while isinstance(expr, cst.Call):
        mc = method_call(expr)
        if mc is not None and mc[1] in methods and isinstance(mc[0], cst.Call):
            expr = mc[0]
            continue
        return expr
    return None


def number(expr: cst.CSTNode) -> Optional[float]:
    if isinstance(expr, cst.Integer):
        return float(int(expr.value.replace("_", ""), 0))
    if isinstance(expr, cst.Float):
        try:
            return float(expr.value.replace("_", ""))
        except ValueError:
            return None
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        n = number(expr.expression)
        return -n if n is not None else None
    return None


def keyword(call: cst.Call, name: str) -> Optional[cst.Arg]:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def positional(call: cst.Call, index: int) -> Optional[cst.Arg]:
    pos = [a for a in call.args if a.keyword is None and not a.star]
    return pos[index] if index < len(pos) else None


def argument(call: cst.Call, index: int, name: str) -> Optional[cst.BaseExpression]:
    arg = keyword(call, name) or positional(call, index)
    return arg.value if arg is not None else None


def literal_value(expr: cst.CSTNode):
    """A Python value for simple literals (numbers, strings, True/False/None), else a
    sentinel `NOT_LITERAL`."""
    n = number(expr)
    if n is not None:
        return n
    if isinstance(expr, cst.SimpleString):
        return expr.evaluated_value
    if isinstance(expr, cst.ConcatenatedString):
        v = expr.evaluated_value
        return v if v is not None else NOT_LITERAL
    if isinstance(expr, cst.Name) and expr.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[expr.value]
    return NOT_LITERAL


NOT_LITERAL = object()


def unparenthesized(expr: cst.BaseExpression) -> cst.BaseExpression:
    return expr.with_changes(lpar=(), rpar=()) if getattr(expr, "lpar", None) else expr


def target_names(target: cst.CSTNode) -> list[str]:
    """Names bound by an assignment or loop target."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        out = []
        for el in target.elements:
            out.extend(target_names(el.value))
        return out
    if isinstance(target, cst.StarredElement):
        return target_names(target.value)
    return []


def simple_assignment(node: cst.CSTNode) -> Optional[tuple[str, cst.BaseExpression]]:
    """`name = value` with one plain-name target."""
    if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
        return node.targets[0].target.value, node.value
    if isinstance(node, cst.AnnAssign) and isinstance(node.target, cst.Name) and node.value is not None:
        return node.target.value, node.value
    return None


def value_assigned(node: cst.CSTNode, name: str) -> Optional[cst.BaseExpression]:
    """The value `name` gets from an assignment statement: `name = v`, `a = name = v`,
    `name, b = v1, v2`; None when it cannot be told (unpacking a call, etc.)."""
    if isinstance(node, cst.AnnAssign):
        return node.value if isinstance(node.target, cst.Name) and node.target.value == name else None
    if not isinstance(node, cst.Assign):
        return None
    for t in node.targets:
        target = t.target
        if isinstance(target, cst.Name) and target.value == name:
            return node.value
        if isinstance(target, (cst.Tuple, cst.List)) and isinstance(node.value, (cst.Tuple, cst.List)) \
                and len(target.elements) == len(node.value.elements):
            for el, val in zip(target.elements, node.value.elements):
                if isinstance(el.value, cst.Name) and el.value.value == name and not isinstance(el, cst.StarredElement):
                    return val.value
    return None
