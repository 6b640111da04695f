"""Models and their modes: which calls run a model's forward pass, which module a
name is bound to, whether its layers behave differently in train and eval mode, and
whether `eval()` reaches a statement (in its scope or through every in-file caller)."""
from __future__ import annotations

from functools import cached_property
from typing import Optional

import libcst as cst

from . import flow, models, resolve
from .exprs import dotted, last_part, strip_method_chain
from .index import Stmt
from .scopes import argument_for

_DEVICE_METHODS = {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval",
                   "requires_grad_", "share_memory"}


class ModelModes:
    def __init__(self, facts) -> None:
        self.facts = facts  # the ModuleFacts of the module

    def model_key(self, call: cst.Call) -> Optional[str]:
        """If the call runs a model's forward pass, the model's dotted name."""
        known = self._model_keys.get(id(call))
        if known is not None and known[0] is call:
            return known[1]
        key = self._model_key(call)
        self._model_keys[id(call)] = (call, key)
        return key

    @cached_property
    def _model_keys(self) -> dict[int, tuple[cst.Call, Optional[str]]]:
        # id(call) -> (call, answer): rules and facts ask about the same calls again
        # and again; the call is kept so that an id reused by another node cannot match.
        return {}

    def _model_key(self, call: cst.Call) -> Optional[str]:
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        key = dotted(func)
        if key is None or any(a.keyword is not None and a.keyword.value == "training" for a in call.args):
            return None
        head, _, attr = key.rpartition(".")
        name = attr or key
        if key in self.facts.functions or key in self.facts.classes or key in self.facts.aliases:
            return None
        if head and head != "self":
            return None
        if self.facts.patterns.is_model(name):
            return key
        if not head:
            stmt = self.stmt_of_call(call)
            if stmt is not None and self.model_binding_call(key, stmt) is not None:
                return key
        return None

    def model_calls(self, stmt: Stmt) -> list[tuple[cst.Call, str, Stmt]]:
        """(call, model key, statement) for every forward pass inside a statement."""
        out = []
        for call, s in self.facts.calls_within(stmt):
            key = self.model_key(call)
            if key is not None:
                out.append((call, key, s))
        return out

    @cached_property
    def _call_stmt(self) -> dict[int, Stmt]:
        return {id(c): s for c, s in self.facts.index.calls}

    def stmt_of_call(self, call: cst.Call) -> Optional[Stmt]:
        return self._call_stmt.get(id(call))

    def model_binding_call(self, name: str, at: Stmt) -> Optional[cst.Call]:
        """`model = Net(...).to(device)` -> the `Net(...)` call, if it builds a module."""
        value, bound_at = resolve.rebound_model(self.facts, name, at)
        call = strip_device_calls(value)
        if call is None:
            return None
        callee = self.facts.qualify(call.func) or ""
        short = last_part(callee)
        cls = resolve.class_live_at(self.facts, short, bound_at)
        if cls is not None and resolve.is_module_class(self.facts, cls):
            return call
        if cls is None and resolve.builds_project_model(self.facts, callee):
            return call
        if callee.startswith(("torch.nn.", "nn.")) and short[:1].isupper():
            return call
        if callee.startswith(models.MODEL_FACTORIES_PREFIXES) or ".from_pretrained" in callee:
            return call
        return None

    def class_sensitivity(self, class_name: str, _seen: Optional[set] = None, at: Optional[Stmt] = None) -> Optional[bool]:
        """Mode sensitivity of an in-file class (its definition live at `at`); None
        when the class is not in the file."""
        cls = resolve.class_live_at(self.facts, class_name, at)
        if cls is None:
            return None
        seen = _seen or set()
        if id(cls) in seen:
            return False
        seen.add(id(cls))
        result = models.calls_sensitivity(
            # Its methods run when the model is built (at `at`): the classes they name
            # are those live then; its bases are those live where it is defined.
            [c for c, _ in self.facts.calls_within(cls.stmt)], self.facts.qualify, resolve.sensitivity_resolver(self.facts, at, seen))
        for base in cls.bases:
            if last_part(base) in self.facts.classes and last_part(base) != class_name:
                b = self.class_sensitivity(last_part(base), seen, at=cls.stmt)
            elif base and resolve.project_sensitivity(self.facts, base) is not None:
                b = resolve.project_sensitivity(self.facts, base)
            else:
                continue
            if b:
                return True
            if b is None:
                result = None
        return result

    def model_sensitivity(self, key: str, at: Stmt, _depth: int = 0) -> Optional[bool]:
        """Does the model behind `key` contain train/eval-dependent layers?
        True / False / None (cannot tell)."""
        if _depth == 0 and self.facts.project is not None:
            self.facts.project.asking = at
        resolver = resolve.sensitivity_resolver(self.facts, at)
        function = self.facts.function_of(at)
        if key == "self" or key.startswith("self."):
            if function is None or function.class_stmt is None:
                return None
            cls_name = function.class_stmt.node.name.value
            if key == "self":
                return self.class_sensitivity(cls_name)
            cls = self.facts.classes.get(cls_name)
            for call, s in self.facts.calls_within(cls.stmt):
                node = s.node
                if isinstance(node, cst.Assign) and any(dotted(t.target) == key for t in node.targets):
                    built = strip_device_calls(node.value)
                    if built is not None:
                        return models.layer_sensitivity(built, self.facts.qualify, resolver) if built is call else None
            return None
        call = self.model_binding_call(key, at)
        if call is not None:
            s = models.layer_sensitivity(call, self.facts.qualify, resolve.sensitivity_resolver(self.facts, self.stmt_of_call(call)))
            if s is None and last_part(self.facts.qualify(call.func) or "") == "Sequential":
                return models.calls_sensitivity(_calls_in(call), self.facts.qualify, resolver)
            return s
        if function is not None and key in function.params and _depth < 3:
            results = []
            if not self.facts.call_sites(function) and self.facts.project is not None and resolve.is_exported_function(function):
                self.facts.project.assume("sensitive", function.name, key)
            for site in self.facts.call_sites(function):
                arg = argument_for(function, key, site.call)
                if isinstance(arg, cst.Name):
                    results.append(self.model_sensitivity(arg.value, site.stmt, _depth + 1))
                else:
                    results.append(None)
            if results and any(r is True for r in results):
                return True
            if results and all(r is False for r in results):
                return False
        return None

    def eval_mode_reaches(self, key: str, at: Stmt, _depth: int = 0) -> bool:
        """Is `key.eval()` (or train(False)) called before `at` in its scope with no
        train() after it, or before every in-file call of the enclosing function?
        A call of an in-file helper that switches the model counts too, and so does a
        bare `model.eval` (a typo that EL204 reports)."""
        if _depth == 0 and self.facts.project is not None:
            self.facts.project.asking = at
        state: Optional[bool] = None  # None: no mode call seen; True: train; False: eval
        seen = False
        for s in flow.scope_statements(self.facts.index, at):
            if s.order >= at.order:
                break
            if isinstance(s.node, cst.Expr) and isinstance(s.node.value, cst.Attribute) \
                    and s.node.value.attr.value == "eval" and same_model(dotted(s.node.value.value) or "", key):
                seen, state = True, False
                continue
            for call in s.calls:
                mc = models.mode_call(call) or self._helper_mode_call(call, key)
                if mc is None or not same_model(mc[0], key):
                    continue
                seen = True
                state = mc[1]
        if seen and state is not True:
            return True  # eval() reached, or a non-literal train(flag): do not guess
        if seen:
            return False  # `model.train()` called right before: the callers' eval() is undone
        function = self.facts.function_of(at)
        if function is None or _depth > 2:
            return False
        sites = self.facts.call_sites(function)
        if not sites:
            if key in function.params and self.facts.project is not None and resolve.is_exported_function(function):
                self.facts.project.assume("eval", function.name, key)
            return False
        for site in sites:
            arg = argument_for(function, key, site.call) if key in function.params else None
            site_key = dotted(arg) if arg is not None else (key if key not in function.params else None)
            if key.startswith("self.") and function.is_method:
                site_key = key if isinstance(site.call.func, cst.Attribute) and dotted(site.call.func.value) == "self" else None
            if site_key is None or not self.eval_mode_reaches(site_key, site.stmt, _depth + 1):
                return False
        return True

    def _helper_mode_call(self, call: cst.Call, key: str) -> Optional[tuple[str, Optional[bool]]]:
        """A call of an in-file function or `self.` method whose body switches `key`
        (the same name, or `self.x` inside a method) -> that switch."""
        name = dotted(call.func)
        if name is None:
            return None
        short = last_part(name)
        if name.startswith("self."):
            candidates = [f for f in self.facts.functions.get(short, []) if f.is_method]
        else:
            candidates = [f for f in self.facts.functions.get(name, []) if not f.is_method]
        for f in candidates:
            for inner, _ in self.facts.calls_within(f.stmt):
                mc = models.mode_call(inner)
                if mc is not None and same_model(mc[0], key):
                    return mc
        if not candidates:
            return resolve.imported_mode_call(self.facts, call, key)
        return None


def strip_device_calls(expr) -> Optional[cst.Call]:
    """`Net().to(device).eval()` -> `Net()`."""
    return strip_method_chain(expr, _DEVICE_METHODS)


def _calls_in(call: cst.Call) -> list[cst.Call]:
    from .walk import walk
    return [n for n in walk(call) if isinstance(n, cst.Call) and n is not call]


def same_model(called: str, key: str) -> bool:
    if called == key:
        return True
    # self.eval() switches every submodule; model.module is the DDP-wrapped model.
    if called == "self" and key.startswith("self."):
        return True
    return key == f"{called}.module" or called == f"{key}.module"
