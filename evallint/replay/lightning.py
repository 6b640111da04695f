"""Jobs of the torchmetrics probes, built in the parent from the file's text.

- logged: a LightningModule's step methods are run over one epoch of stand-in batches
  (the module's definitions only: its class, the file's other classes and functions,
  literal constants, the allowed imports), once as written and once fixed; the child
  reduces `self.log` as Lightning does.
- average: the flagged torchmetrics metric is built and scores the whole stand-in set.

The code keeps the file's line numbers, so the child can tell which `self.log` call
logged a value.
"""
from __future__ import annotations

import ast
import importlib.util
import re
from typing import Optional

from .region import RegionError
from .tree import IMPORTABLE

# Imports the child may run for these jobs: lightning is replaced by a stand-in there.
_ALLOWED = frozenset(IMPORTABLE) | {"torchmetrics", "lightning", "pytorch_lightning"}
_DEFAULT_CLASSES = 2
# A class count the skipped set-up defines (`MulticlassAccuracy(num_classes=n_classes)`).
_CLASS_COUNT = re.compile(r"(num_|n_|nb_)?classes|num_class|n_class|NUM_CLASSES|N_CLASSES|NUM_CLASS")
NO_TORCHMETRICS = ("torchmetrics is not installed in the Python that runs replay; install it "
                   "(pip install torchmetrics) to replay this finding")


def torchmetrics_missing() -> Optional[str]:
    return None if importlib.util.find_spec("torchmetrics") is not None else NO_TORCHMETRICS


def parse_text(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        raise RegionError(f"the file does not parse ({exc.msg})") from None


def allowed_imports(tree: ast.Module) -> list[str]:
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [ast.unparse(ast.Import(names=[a])) for a in node.names if a.name.split(".")[0] in _ALLOWED]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level \
                and node.module.split(".")[0] in _ALLOWED and not any(a.name == "*" for a in node.names):
            out += [ast.unparse(ast.ImportFrom(module=node.module, names=[a], level=0)) for a in node.names]
    return list(dict.fromkeys(out))


def definitions_code(text: str, tree: ast.Module) -> str:
    """The file's classes, functions and literal constants at their own line numbers;
    every other line blank (nothing the module does at import time runs)."""
    src = text.splitlines()
    lines = [""] * len(src)
    for node in tree.body:
        keep = isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                ast.literal_eval(node.value)
                keep = True
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                keep = False
        if not keep:
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        for i in range(first - 1, node.end_lineno):
            lines[i] = src[i]
    return "\n".join(lines) + "\n"


def enclosing_method(tree: ast.Module, line: int):
    """(class, method) holding `line`, or (None, None)."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.lineno <= line <= node.end_lineno:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.lineno <= line <= item.end_lineno:
                    return node, item
            return node, None
    return None, None


def _calls_self(method: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == name
               and isinstance(n.func.value, ast.Name) and n.func.value.id == "self" for n in ast.walk(method))


def _steps(cls: ast.ClassDef, method: ast.AST) -> list[str]:
    if method.name.endswith("_step"):
        return [method.name]
    callers = [m.name for m in cls.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
               and m.name.endswith("_step") and _calls_self(m, method.name)]
    # One stage is enough to show the reduction; validation is the one users read.
    callers.sort(key=lambda n: (n != "validation_step", n != "test_step", n))
    if not callers:
        raise RegionError(f"no `*_step` method of `{cls.name}` calls `{method.name}`")
    return callers[:1]


def _world(cls_text: str) -> tuple[int, bool]:
    """Classes in the data and whether the metrics are binary, from the constructors."""
    counts = [int(n) for n in re.findall(r"num_classes\s*=\s*(\d+)", cls_text)]
    counts += [int(n) for n in re.findall(r"Multiclass\w+\(\s*(\d+)", cls_text)]
    binary = bool(re.search(r"Binary\w+\(|task\s*=\s*[\"']binary", cls_text)) and not counts
    classes = max([c for c in counts if c >= 2] or [_DEFAULT_CLASSES])
    return min(classes, 100), binary


def logged_job(text: str, line: int, fixed_text: Optional[str]) -> dict:
    missing = torchmetrics_missing()
    if missing:
        raise RegionError(missing)
    tree = parse_text(text)
    cls, method = enclosing_method(tree, line)
    if cls is None or method is None:
        raise RegionError("the finding is not in a method of a LightningModule class")
    steps = _steps(cls, method)
    classes, binary = _world(ast.get_source_segment(text, cls) or "")
    fixed = None
    if fixed_text is not None:
        try:
            fixed = definitions_code(fixed_text, parse_text(fixed_text))
        except RegionError:
            fixed = None
    return {"kind": "logged", "versions": {"written": definitions_code(text, tree), "fixed": fixed},
            "imports": allowed_imports(tree), "class": cls.name, "steps": steps, "classes": classes, "binary": binary,
            "float_labels": bool(re.search(r"\.float\(\)", ast.get_source_segment(text, cls) or "") and binary)}


def _call_at(tree: ast.Module, line: int, column: int) -> Optional[ast.Call]:
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno == line]
    exact = [c for c in calls if c.col_offset + 1 == column]
    # `Metric(...).to(device)` starts where the metric's call starts: the inner call is meant.
    return min(exact or calls, key=lambda c: (c.end_lineno, c.end_col_offset), default=None)


def _metric_expr(call: ast.Call) -> str:
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    if name.lower().startswith("multilabel"):
        raise RegionError("multilabel metrics are not replayed (the stand-in data are multiclass)")
    if name[:1].islower():  # functional: score the stand-in predictions and labels
        args = list(call.args)
        if len(args) < 2:
            raise RegionError(f"`{name}` is not called with predictions and labels")
        call = ast.Call(func=call.func, args=[ast.Name("__preds__"), ast.Name("__target__"), *args[2:]],
                        keywords=call.keywords)
    return ast.unparse(call)


def _classes_of(call: ast.Call) -> int:
    for kw in call.keywords:
        if kw.arg in ("num_classes", "num_labels") and isinstance(kw.value, ast.Constant) \
                and isinstance(kw.value.value, int):
            return kw.value.value
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    pos = 2 if name[:1].islower() else 0
    if len(call.args) > pos and isinstance(call.args[pos], ast.Constant) and isinstance(call.args[pos].value, int):
        return call.args[pos].value
    return _DEFAULT_CLASSES


def average_job(text: str, line: int, column: int, fixed_text: Optional[str],
                fixed_pos: Optional[tuple[int, int]]) -> dict:
    missing = torchmetrics_missing()
    if missing:
        raise RegionError(missing)
    tree = parse_text(text)
    call = _call_at(tree, line, column)
    if call is None:
        raise RegionError(f"no metric call at line {line}")
    written = _metric_expr(call)
    fixed = None
    if fixed_text is not None and fixed_pos is not None:
        try:
            fixed_call = _call_at(parse_text(fixed_text), fixed_pos[0], fixed_pos[1] + 1)
            fixed = _metric_expr(fixed_call) if fixed_call is not None else None
        except RegionError:
            fixed = None
    classes = max(2, min(_classes_of(call), 100))
    names = {n.id for n in ast.walk(ast.parse(written, mode="eval")) if isinstance(n, ast.Name)}
    class_names = sorted(n for n in names if _CLASS_COUNT.fullmatch(n))
    return {"kind": "average", "versions": {"written": written, "fixed": fixed}, "imports": allowed_imports(tree),
            "classes": classes, "class_names": class_names}
