"""Functions, classes and in-file call sites."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from .exprs import dotted
from .index import Stmt

LIGHTNING_EVAL_STEPS = {"validation_step", "test_step", "predict_step",
                        "on_validation_epoch_end", "on_test_epoch_end", "validation_epoch_end",
                        "test_epoch_end"}


@dataclass(eq=False)
class FunctionInfo:
    stmt: Stmt
    name: str
    params: list[str]
    decorators: list[str]          # dotted decorator names (calls: the callee)
    class_stmt: Optional[Stmt]     # the class it is a method of
    is_method: bool = False

    @property
    def node(self) -> cst.FunctionDef:
        return self.stmt.node

    def param_index(self, name: str) -> Optional[int]:
        """Index among call-site positional arguments (self excluded for methods)."""
        if name not in self.params:
            return None
        i = self.params.index(name)
        return i - 1 if self.is_method else i


@dataclass(eq=False)
class ClassInfo:
    stmt: Stmt
    name: str
    bases: list[str]               # qualified base names
    methods: dict[str, FunctionInfo] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class CallSite:
    call: cst.Call
    stmt: Stmt


def collect_functions(statements, qualify) -> tuple[dict[str, list[FunctionInfo]], dict[str, ClassInfo]]:
    functions: dict[str, list[FunctionInfo]] = {}
    classes: dict[str, ClassInfo] = {}
    for stmt in statements:
        node = stmt.node
        if isinstance(node, cst.ClassDef):
            bases = [qualify(a.value) or "" for a in node.bases]
            classes[node.name.value] = ClassInfo(stmt, node.name.value, bases)
        elif isinstance(node, cst.FunctionDef):
            params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
            decorators = []
            for d in node.decorators:
                target = d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator
                decorators.append(qualify(target) or dotted(target) or "")
            cls_stmt = stmt.parent if stmt.parent is not None and isinstance(stmt.parent.node, cst.ClassDef) else None
            info = FunctionInfo(stmt, node.name.value, params, decorators, cls_stmt,
                                is_method=cls_stmt is not None and bool(params) and params[0] in ("self", "cls"))
            functions.setdefault(info.name, []).append(info)
            if cls_stmt is not None:
                cls = classes.get(cls_stmt.node.name.value)
                if cls is not None:
                    cls.methods[info.name] = info
    return functions, classes


def call_sites_of(function: FunctionInfo, calls: list[tuple[cst.Call, Stmt]]) -> list[CallSite]:
    """In-file calls of a function: `f(...)` for plain functions, `self.f(...)` /
    `obj.f(...)` for methods."""
    sites = []
    for call, stmt in calls:
        func = call.func
        if function.is_method:
            if isinstance(func, cst.Attribute) and func.attr.value == function.name:
                sites.append(CallSite(call, stmt))
        elif isinstance(func, cst.Name) and func.value == function.name:
            sites.append(CallSite(call, stmt))
    return sites


def argument_for(function: FunctionInfo, param: str, call: cst.Call):
    """The argument a call passes for `param` of `function`, or None."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == param:
            return arg.value
    i = function.param_index(param)
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if i is not None and 0 <= i < len(positional):
        return positional[i].value
    return None
