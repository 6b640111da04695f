"""A stand-in for `self` in regions cut from a method (`def test(self): ...`).

Only when the class's `__init__` shows what the attributes the region reads are: it
assigns them (`self.net = net`, `self.threshold = 0.5`). Each attribute then gets the
role its use in the region shows (`self.net(self.test_inputs)`: a model and its
inputs) or the literal `__init__` gives it. A class without such a constructor keeps
`self` unreplayable: nothing tells what its attributes hold.
"""
from __future__ import annotations

import ast
import re
from typing import Optional

import libcst as cst

from .roles import infer_roles

_ATTR = re.compile(r"\bself\.([A-Za-z_]\w*)")
_PREFIX = "__self_"


def _init_assignments(cls: cst.ClassDef) -> Optional[dict[str, cst.BaseExpression]]:
    init = next((s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"), None)
    if init is None or not isinstance(init.body, cst.IndentedBlock):
        return None
    out: dict[str, cst.BaseExpression] = {}
    for stmt in init.body.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
                targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                for t in targets:
                    if isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self":
                        out[t.attr.value] = small.value
    return out


def _literal(expr: cst.BaseExpression):
    code = cst.Module(body=[]).code_for_node(expr)
    try:
        return True, ast.literal_eval(code)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def _metric_imports(module: Optional[cst.Module]) -> tuple[list[str], set[str]]:
    """The module's torchmetrics imports, one name a line, and the names they bind."""
    if module is None:
        return [], set()
    lines: list[str] = []
    bound: set[str] = set()
    for node in ast.parse(module.code).body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "torchmetrics":
                    lines.append(ast.unparse(ast.Import(names=[a])))
                    bound.add((a.asname or a.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and not node.level \
                and (node.module or "").split(".")[0] == "torchmetrics":
            for a in node.names:
                if a.name != "*":
                    lines.append(ast.unparse(ast.ImportFrom(module=node.module, names=[a], level=0)))
                    bound.add(a.asname or a.name)
    return lines, bound


def _metric_construct(expr: cst.BaseExpression, bound: set[str]) -> bool:
    """`torchmetrics.Accuracy(task=...)`, `MulticlassF1Score(num_classes=10)` with literal arguments."""
    if not isinstance(expr, cst.Call):
        return False
    root = expr.func
    while isinstance(root, cst.Attribute):
        root = root.value
    if not (isinstance(root, cst.Name) and root.value in bound):
        return False
    return all(_literal(a.value)[0] for a in expr.args)


def self_roles(region_code: str, cls: Optional[cst.ClassDef],
               module: Optional[cst.Module] = None) -> tuple[Optional[dict], str]:
    """({attribute: role, {"literal": value} or {"construct": code, "imports": [...]}}, "")
    or (None, why not). Metrics the constructor builds with literal arguments are built."""
    if cls is None:
        return None, "no stand-in for `self`"
    assigned = _init_assignments(cls)
    if assigned is None:
        return None, f"no stand-in for `self`: `{cls.name.value}` has no `__init__` that shows its attributes"
    methods = {s.name.value for s in cls.body.body if isinstance(s, cst.FunctionDef)}
    used = list(dict.fromkeys(_ATTR.findall(region_code)))
    for attr in used:
        if attr in methods:
            return None, f"no stand-in for `self.{attr}()`: replay does not run the class's other methods"
        if attr not in assigned:
            return None, f"no stand-in for `self.{attr}`: `__init__` does not assign it"
    renamed = _ATTR.sub(lambda m: _PREFIX + m.group(1), region_code)
    try:
        renamed_module = cst.parse_module(renamed)
    except cst.ParserSyntaxError:
        return None, "no stand-in for `self`"
    roles = infer_roles(renamed_module, [_PREFIX + a for a in used])
    out: dict = {}
    for attr in used:
        role = roles.get(_PREFIX + attr)
        if role:
            out[attr] = role
            continue
        ok, value = _literal(assigned[attr])
        if ok:
            out[attr] = {"literal": value}
            continue
        imports, bound = _metric_imports(module)
        if _metric_construct(assigned[attr], bound):
            out[attr] = {"construct": cst.Module(body=[]).code_for_node(assigned[attr]), "imports": imports}
            continue
        return None, f"no stand-in for `self.{attr}`"
    return out, ""
