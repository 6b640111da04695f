"""Rebuild a finding's test and training datasets from the code that constructs them,
for the overlap probe. Only chains of assignments made of literals, allow-listed
modules (torch, torchvision, ...) and each other are rebuilt; anything else (a
file's own Dataset class, data loaded from disk) makes the finding not replayable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from .names import BUILTINS, expr_reads
from .region import has_io
from .tree import RegionError, Tree, before, code_of, path, smalls, unit

_TRAIN = re.compile(r"train", re.I)


@dataclass(frozen=True)
class DatasetsCode:
    code: str
    imports: tuple[str, ...]
    test_expr: str
    train_expr: str
    keyed: bool = False  # stand-ins keyed by each side's construction


def _unwrap_loader(expr: cst.BaseExpression) -> cst.BaseExpression:
    if isinstance(expr, cst.Call):
        f = expr.func
        name = f.attr.value if isinstance(f, cst.Attribute) else f.value if isinstance(f, cst.Name) else ""
        if name == "DataLoader":
            for a in expr.args:
                if a.keyword is None or a.keyword.value == "dataset":
                    return a.value
    return expr


def _callee(expr: cst.BaseExpression) -> str:
    if isinstance(expr, cst.Call):
        return code_of(expr.func)
    return ""


def _assignments(block) -> list[tuple[int, str, cst.BaseExpression, cst.BaseStatement]]:
    out = []
    for stmt in block:
        for small in smalls(stmt):
            if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
                out.append((id(stmt), small.targets[0].target.value, small.value, stmt))
    return out


def build_datasets_code(text: str, line: int) -> DatasetsCode:
    tree = Tree.parse(text)
    at = tree.at_line(line)
    if at is None or not isinstance(unit(at), cst.SimpleStatementLine):
        raise RegionError("the finding is not on a dataset assignment")
    stmt = unit(at)
    assigns = [s for s in smalls(stmt) if isinstance(s, cst.Assign)]
    if not assigns:
        raise RegionError("the finding is not on a dataset assignment")
    test_value = _unwrap_loader(assigns[0].value)
    # The statements visible before the finding: enclosing blocks, outermost first.
    visible: list[cst.BaseStatement] = []
    for lv in path(at):
        visible.extend(before(lv))
    defs = _assignments(visible)

    train_value: Optional[cst.BaseExpression] = None
    if isinstance(test_value, cst.Name) and _TRAIN.search(test_value.value):
        train_value = test_value  # the test loader wraps the training data itself
    else:
        cands = [(name, _unwrap_loader(v)) for _, name, v, _ in defs if _TRAIN.search(name)]
        same = [v for _, v in cands if _callee(v) and _callee(v) == _callee(test_value)]
        pick = same or [v for _, v in cands if isinstance(v, (cst.Call, cst.Name))]
        train_value = pick[-1] if pick else None
    if train_value is None:
        raise RegionError("no training dataset found to compare with")

    imports, modules = tree.imports()
    try:
        return _literal_build(tree, defs, test_value, train_value, imports, modules)
    except RegionError as exc:
        if not _KEYABLE.search(str(exc)):
            raise
    # Built from files or by a class of the file: stand-ins keyed by how each side is
    # built, so that two datasets built the same way hold the same samples.
    test_key, train_key = _construction(test_value, defs), _construction(train_value, defs)
    code = f"__test__ = __evallint_keyed__({test_key!r})\n__train__ = __evallint_keyed__({train_key!r})\n"
    return DatasetsCode(code=code, imports=(), test_expr=code_of(test_value), train_expr=code_of(train_value),
                        keyed=True)


_KEYABLE = re.compile(r"loaded from files|defined in this file")


def _construction(expr: cst.BaseExpression, defs, depth: int = 0) -> str:
    """The text of how a value is built, with the names it reads replaced by how they are
    built in turn: `test_ds` -> `HeartDataset("data/heart.csv")`."""
    text = code_of(expr)
    if depth > 6:
        return text
    latest = {name: value for _, name, value, _ in defs}
    for name in sorted(expr_reads(expr), key=len, reverse=True):
        if name in latest and latest[name] is not expr:
            inner = _construction(latest[name], defs, depth + 1)
            text = re.sub(rf"(?<![\w.]){re.escape(name)}(?!\w)", lambda _m: f"({inner})", text)
    return text


def _literal_build(tree: Tree, defs, test_value, train_value, imports, modules) -> DatasetsCode:
    local = tree.local_defs()
    needed = set(expr_reads(test_value)) | set(expr_reads(train_value))
    chosen: list[cst.BaseStatement] = []
    for sid, name, value, st in reversed(defs):
        if name not in needed:
            continue
        if has_io(tree, st) or id(st) in {id(c) for c in chosen}:
            raise RegionError(f"`{name}` is loaded from files, not built from literals")
        chosen.append(st)
        needed = (needed - {name}) | set(expr_reads(value))
    missing = sorted(needed - BUILTINS - modules)
    if missing:
        n = missing[0]
        if tree.origin(n) is not None:
            raise RegionError(f"`{n}` comes from `{tree.origin(n)}`, which replay does not import")
        if n in local:
            raise RegionError(f"`{n}` is defined in this file; replay does not run the module's code")
        raise RegionError(f"`{n}` is not built from literals")
    body = "".join(cst.Module(body=[s]).code for s in reversed(chosen))
    test_src, train_src = code_of(test_value), code_of(train_value)
    code = f"{body}__test__ = {test_src}\n__train__ = {train_src}\n"
    return DatasetsCode(code=code, imports=tuple(imports), test_expr=test_src, train_expr=train_src)
