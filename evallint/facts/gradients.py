"""Gradients: where code backpropagates or needs gradients, and where they are off
(a no_grad block, a decorator, a preceding `set_grad_enabled(False)`, every in-file
caller) or never recorded for a model's own weights (frozen parameters)."""
from __future__ import annotations

import libcst as cst

from . import flow, loops, resolve, scopes
from .exprs import dotted, last_part, method_call
from .index import Stmt


class Gradients:
    def __init__(self, facts) -> None:
        self.facts = facts  # the ModuleFacts of the module

    def backprops_in(self, stmt: Stmt) -> bool:
        """Does the code call backward(), an optimizer step, or autograd.grad?"""
        for call, _ in self.facts.calls_within(stmt):
            name = self.facts.qualify(call.func) or dotted(call.func) or ""
            short = last_part(name)
            if short in ("backward", "manual_backward") or name in ("torch.autograd.grad", "torch.autograd.backward"):
                return True
            if short == "step" and method_call(call) and looks_like_optimizer(dotted(call.func.value) or ""):
                return True
        return False

    def needs_gradients(self, stmt: Stmt) -> bool:
        """Gradient-based evaluation: backward, autograd.grad, requires_grad_, enable_grad."""
        if self.backprops_in(stmt):
            return True
        for call, _ in self.facts.calls_within(stmt):
            short = last_part(self.facts.qualify(call.func) or dotted(call.func))
            if short in ("requires_grad_", "enable_grad", "retain_grad", "grad", "vjp", "jvp", "jacobian", "hessian"):
                return True
        return False

    def under_no_grad_block(self, stmt: Stmt) -> bool:
        for a in stmt.ancestors():
            if a.is_function:
                return False
            if isinstance(a.node, cst.With) and any(self.is_no_grad_item(i.item, a) for i in a.node.items):
                return True
        return False

    def is_no_grad_item(self, expr: cst.BaseExpression, at: Stmt) -> bool:
        if loops.is_no_grad_item(expr, self.facts.qualify):
            return True
        if isinstance(expr, (cst.Attribute, cst.Name)) and self.facts.qualify(expr) in loops.NO_GRAD:
            return True  # `with torch.no_grad:` - the intent is clear; EL204 reports the typo
        if isinstance(expr, cst.Name):
            value = flow.assigned_value(self.facts.index, expr.value, at)
            return value is not None and loops.is_no_grad_item(value, self.facts.qualify)
        return False

    def no_grad_decorated(self, function: scopes.FunctionInfo) -> bool:
        # project wrappers such as yolov5's `@smart_inference_mode()` count by their name
        return any(d in loops.NO_GRAD or loops.names_no_grad(d) for d in function.decorators)

    def grad_disabled(self, stmt: Stmt, _depth: int = 0) -> bool:
        """Are gradients off when this statement runs (with-block, decorator, a
        preceding set_grad_enabled(False), or every in-file caller)?"""
        if _depth == 0 and self.facts.project is not None:
            self.facts.project.asking = stmt
        if self.under_no_grad_block(stmt):
            return True
        function = self.facts.function_of(stmt)
        if function is not None and (self.no_grad_decorated(function) or self.facts.is_lightning_step(function)):
            return True
        state = None
        for s in flow.scope_statements(self.facts.index, stmt):
            if s.order >= stmt.order:
                break
            for call in s.calls:
                if self.facts.qualify(call.func) in loops.SET_GRAD_ENABLED and call.args:
                    v = call.args[0].value
                    state = not (isinstance(v, cst.Name) and v.value == "False")
        if state is False:
            return True
        if function is None or _depth > 3:
            return False
        sites = self.facts.call_sites(function)
        if not sites and self.facts.project is not None and resolve.is_exported_function(function):
            self.facts.project.assume("no_grad", function.name, None)
        return bool(sites) and all(self.grad_disabled(site.stmt, _depth + 1) for site in sites)

    def parameters_frozen(self, key: str, at: Stmt) -> bool:
        """Before `at`: `key.requires_grad_(False)`, or `p.requires_grad = False` in a loop
        over `key.parameters()`: no graph is recorded for the model's own weights."""
        for s in flow.scope_statements(self.facts.index, at):
            if s.order >= at.order:
                break
            for call in s.calls:
                mc = method_call(call)
                if mc and mc[1] == "requires_grad_" and dotted(mc[0]) == key and call.args \
                        and isinstance(call.args[0].value, cst.Name) and call.args[0].value.value == "False":
                    return True
            node = s.node
            if isinstance(node, cst.Assign) and isinstance(node.value, cst.Name) and node.value.value == "False" \
                    and any(isinstance(t.target, cst.Attribute) and t.target.attr.value == "requires_grad"
                            for t in node.targets):
                for loop in self.facts.enclosing_loops(s):
                    it = loop.node.iter
                    if isinstance(it, cst.Call) and method_call(it) and method_call(it)[1] == "parameters" \
                            and dotted(it.func.value) == key:
                        return True
        return False


def looks_like_optimizer(name: str) -> bool:
    n = last_part(name).lower()
    return any(k in n for k in ("opt", "optim", "optimizer", "sgd", "adam", "scaler"))
