"""Loops and the evaluation-context classifier."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import libcst as cst

from .exprs import dotted, last_part, target_names
from .index import Stmt

# Wrappers whose first argument is the real iterable.
_ITER_WRAPPERS = {"enumerate", "tqdm", "iter", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm",
                  "trange", "progress_bar", "track", "rich.progress.track", "zip"}


@dataclass(eq=False)
class LoopInfo:
    stmt: Stmt
    iter_name: Optional[str]     # the underlying iterable's dotted name, if any
    targets: list[str]

    @property
    def node(self) -> cst.For:
        return self.stmt.node

    @property
    def is_while(self) -> bool:
        return isinstance(self.stmt.node, cst.While)

    @property
    def iter(self) -> Optional[cst.BaseExpression]:
        """The iterable of a `for` loop (None for a `while` loop)."""
        return None if self.is_while else self.stmt.node.iter

    @property
    def body(self) -> list[Stmt]:
        return self.stmt.blocks.get("body", [])


def underlying_iterable(expr: cst.BaseExpression, qualify) -> Optional[str]:
    """`enumerate(tqdm(val_loader))` -> "val_loader"; `loader.dataset` -> "loader.dataset"."""
    for _ in range(4):
        if isinstance(expr, cst.Call):
            name = qualify(expr.func) or ""
            if (name in _ITER_WRAPPERS or last_part(name) in _ITER_WRAPPERS) and expr.args:
                expr = expr.args[0].value
                continue
            return None
        break
    return dotted(expr)


def make_loop(stmt: Stmt, qualify) -> LoopInfo:
    node = stmt.node
    if isinstance(node, cst.While):
        return LoopInfo(stmt, None, [])
    return LoopInfo(stmt, underlying_iterable(node.iter, qualify), target_names(node.target))


def in_loop_body(stmt: Stmt, loop_stmt: Stmt) -> bool:
    """Is `stmt` (nested in `loop_stmt`) in the repeated body, not in its `else:`
    clause, which runs once after the loop?"""
    child = stmt
    for a in stmt.ancestors():
        if a is loop_stmt:
            return child.block is loop_stmt.blocks.get("body")
        child = a
    return False


# no_grad-like context managers and decorators, qualified.
NO_GRAD = {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad",
           "torch.autograd.grad_mode.no_grad", "torch.autograd.inference_mode"}
SET_GRAD_ENABLED = {"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"}


def names_no_grad(decorator: str) -> bool:
    """A decorator named like a gradient switch-off (`smart_inference_mode`, `no_grad`)."""
    short = decorator.rsplit(".", 1)[-1].lower()
    return short.endswith(("no_grad", "inference_mode", "nograd"))


def is_no_grad_item(expr: cst.BaseExpression, qualify) -> bool:
    """`torch.no_grad()`, `torch.inference_mode()`, `torch.set_grad_enabled(False)`."""
    if not isinstance(expr, cst.Call):
        return False
    name = qualify(expr.func)
    if name in NO_GRAD:
        return not (expr.args and isinstance(expr.args[0].value, cst.Name) and expr.args[0].value.value == "False")
    if name in SET_GRAD_ENABLED and expr.args:
        v = expr.args[0].value
        return isinstance(v, cst.Name) and v.value == "False"
    return False
