"""Model resolution beyond one expression: which class definition is live at a
statement (notebooks redefine classes cell by cell), what an imported class or helper
of the checked tree is (through the project view), and the object behind
`model = model.train()` / `model = model.to(device)` (the same module)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from . import flow, models
from .exprs import dotted, last_part, method_call
from .scopes import ClassInfo

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts
    from .index import Stmt

# Methods that return the module they are called on.
SAME_MODULE_METHODS = {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval",
                       "requires_grad_", "share_memory", "type", "xpu", "mps"}
_MAX_REBINDS = 6


def class_definitions(facts: "ModuleFacts") -> dict[str, list[ClassInfo]]:
    """Module-level class definitions by name, in source order (the last one is the
    `facts.classes` entry)."""
    out: dict[str, list[ClassInfo]] = {}
    for stmt in facts.statements:
        node = stmt.node
        if isinstance(node, cst.ClassDef) and stmt.parent is None:
            name = node.name.value
            last = facts.classes.get(name)
            info = last if last is not None and last.stmt is stmt else \
                ClassInfo(stmt, name, [facts.qualify(a.value) or "" for a in node.bases])
            out.setdefault(name, []).append(info)
    return out


def class_live_at(facts: "ModuleFacts", name: str, at: Optional["Stmt"]) -> Optional[ClassInfo]:
    """The definition of `name` that module-level code at `at` runs with: the last one
    before it (a notebook cell sees the classes of the cells executed before it). Code
    inside functions runs later, with the last definition."""
    defs = facts._class_definitions.get(name)
    if not defs:
        return facts.classes.get(name)
    if at is None or at.function is not None or len(defs) == 1:
        return defs[-1]
    before = [d for d in defs if d.stmt.order < at.order]
    return before[-1] if before else defs[-1]


def rebound_model(facts: "ModuleFacts", name: str, at: "Stmt") -> tuple[Optional[cst.BaseExpression], "Stmt"]:
    """The value behind `name` at `at`, through `name = other.train()`,
    `name = name.to(device)`, `name = name.eval()`: these return the same module."""
    for _ in range(_MAX_REBINDS):
        stmt = flow.last_assignment_before(facts.index, name, at)
        if stmt is None:
            return None, at
        value = flow.assigned_value(facts.index, name, at)
        inner = value
        while isinstance(inner, cst.Call):
            mc = method_call(inner)
            if mc is None or mc[1] not in SAME_MODULE_METHODS:
                break
            inner = mc[0]
        if isinstance(inner, cst.Name) and inner is not value:
            name, at = inner.value, stmt
            continue
        return value, stmt
    return None, at


def builds_project_model(facts: "ModuleFacts", callee: str) -> bool:
    """Does `callee` (as qualified in this module) build a torch module defined in
    another module of the checked tree (a class, or a factory returning one)?"""
    if facts.project is None:
        return False
    found = facts.project.lookup(callee)
    if found is None:
        return False
    kind, _, entry, _ = found
    return bool(entry.get("module")) if kind == "class" else "returns_model" in entry


def project_sensitivity(facts: "ModuleFacts", callee: str) -> Optional[bool]:
    """Mode sensitivity of a project class or factory; None when unknown."""
    if facts.project is None:
        return None
    found = facts.project.lookup(callee)
    if found is None:
        return None
    kind, _, entry, _ = found
    return entry.get("sensitive") if kind == "class" else entry.get("returns_model")


def project_base_is_module(facts: "ModuleFacts", cls: ClassInfo) -> bool:
    return facts.project is not None and any(
        (facts.project.imported_class(b) or {}).get("module") for b in cls.bases if b)


def imported_mode_call(facts: "ModuleFacts", call: cst.Call, key: str) -> Optional[tuple[str, Optional[bool]]]:
    """`prepare(model)` where `prepare`, in another module of the tree, switches its
    parameter's mode -> (key, mode)."""
    if facts.project is None:
        return None
    found = facts.project.imported_function(facts.qualify(call.func))
    if found is None:
        return None
    entry = found[2]
    for param, mode in entry.get("mode", {}).items():
        arg = argument(entry.get("params", []), param, call)
        if arg is not None and dotted(arg) == key:
            return key, mode
    return None


def argument(params: list[str], param: str, call: cst.Call):
    """The argument a call passes for a plain function's parameter."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == param:
            return arg.value
    if param not in params:
        return None
    i = params.index(param)
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return positional[i].value if i < len(positional) else None


def is_exported_function(function) -> bool:
    """A module-level plain function: other modules can import and call it."""
    return function.stmt.parent is None and not function.is_method


def sensitivity_resolver(facts: "ModuleFacts", at: Optional["Stmt"], seen: Optional[set] = None):
    """The `class_sensitivity(name)` callback of `models.layer_sensitivity`: in-file
    classes (the definition live at `at`), then classes of the checked tree."""
    def resolve(name: str) -> Optional[bool]:
        if name in facts.classes:
            return facts.class_sensitivity(name, seen, at=at)
        if facts.project is not None and facts.project.lookup(name) is not None:
            return project_sensitivity(facts, name)
        short = last_part(name)
        if short in facts.classes:
            return facts.class_sensitivity(short, seen, at=at)
        return None
    return resolve


def is_module_class(facts: "ModuleFacts", cls: ClassInfo) -> bool:
    return models.is_module_class(cls, facts.classes) or project_base_is_module(facts, cls)
