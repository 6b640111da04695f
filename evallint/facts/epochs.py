"""The epoch loop and its phases: the mode of each model along the loop's path.

A loop body is read as a sequence of events in source order: mode switches
(`model.eval()`, `model.train()`), forward passes, training steps (`backward()`,
`optimizer.step()`) and calls we cannot see into that receive a model. Calls of
in-file functions (and `self.` methods) are followed two levels deep, with their
parameters renamed to the caller's arguments, so `evaluate(model, val_loader)` that
calls `model.eval()` is seen as an eval switch of `model` in the epoch loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import libcst as cst

from . import models
from .exprs import dotted, last_part, method_call
from .index import Stmt

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts
    from .scopes import FunctionInfo

MAX_DEPTH = 2
# Callees that receive a model but never change its mode.
_HARMLESS = {"print", "len", "isinstance", "id", "type", "str", "repr", "hasattr", "getattr", "deepcopy",
             "copy.deepcopy", "torch.save", "save", "count_parameters", "sum", "list", "tuple", "vars"}
# Methods of a model that never change its mode.
_MODEL_METHODS_HARMLESS = {"parameters", "named_parameters", "state_dict", "zero_grad", "to", "cuda", "cpu",
                           "buffers", "named_buffers", "load_state_dict", "float", "half", "double", "forward",
                           "children", "modules", "named_modules", "register_forward_hook", "requires_grad_"}


@dataclass(eq=False)
class Event:
    kind: str                  # "eval" | "train" | "unknown" | "forward" | "step"
    key: Optional[str]         # the model (in the loop's own names); "*" any model
    node: cst.CSTNode          # the innermost call
    top: Stmt                  # the statement of the loop body it is reached through
    via: cst.CSTNode           # the call in the loop body it is reached through
    models: set = field(default_factory=set)  # for steps: models run or passed in the step's loop
    stmt: Optional[Stmt] = None  # the statement holding the call


@dataclass(eq=False)
class ModeLeak:
    """`model.eval()` in a loop, reached again by a training step with no train()."""

    loop: Stmt
    key: str
    eval_event: Event
    step_event: Event
    wraps: bool                # the step comes before the eval in the body (next iteration)


def is_training_step(facts: "ModuleFacts", call: cst.Call) -> bool:
    from .gradients import looks_like_optimizer
    name = facts.qualify(call.func) or dotted(call.func) or ""
    short = last_part(name)
    if isinstance(call.func, cst.Attribute) and call.func.attr.value in ("backward", "manual_backward"):
        return True  # also `scaler.scale(loss).backward()`
    if short in ("backward", "manual_backward") or name in ("torch.autograd.backward",):
        return True
    return short == "step" and method_call(call) is not None and looks_like_optimizer(dotted(call.func.value) or "")


def is_optimizer_step(facts: "ModuleFacts", call: cst.Call) -> bool:
    from .gradients import looks_like_optimizer
    mc = method_call(call)
    return mc is not None and mc[1] == "step" and looks_like_optimizer(dotted(mc[0]) or "")


def loop_statements(facts: "ModuleFacts") -> list[Stmt]:
    return [s for s in facts.statements if isinstance(s.node, (cst.For, cst.While))]


def _map(key: Optional[str], subst: dict) -> Optional[str]:
    if key is None:
        return None
    root, dot, rest = key.partition(".")
    if root in subst:
        base = subst[root]
        return None if base is None else base + dot + rest
    return key


def _resolve(facts: "ModuleFacts", call: cst.Call, frame_fn: Optional["FunctionInfo"], subst: dict):
    """The in-file function a call runs, or None."""
    func = call.func
    if isinstance(func, cst.Name) and f"#inst:{func.value}" in subst:
        cls = facts.classes.get(subst[f"#inst:{func.value}"])
        return cls.methods.get("__call__") if cls is not None else None  # `loss_compute(out, y)`
    if isinstance(func, cst.Name):
        cands = [f for f in facts.functions.get(func.value, []) if not f.is_method and f.class_stmt is None]
        return cands[-1] if len(cands) == 1 else None
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self" \
            and frame_fn is not None and frame_fn.class_stmt is not None:
        cls = facts.classes.get(frame_fn.class_stmt.node.name.value)
        return cls.methods.get(func.attr.value) if cls is not None else None
    return None


def _bind(facts: "ModuleFacts", function: "FunctionInfo", call: cst.Call, subst: dict) -> dict:
    out = {}
    params = function.params[1:] if function.is_method else function.params
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for i, p in enumerate(params):
        arg = positional[i].value if i < len(positional) else None
        for a in call.args:
            if a.keyword is not None and a.keyword.value == p:
                arg = a.value
        out[p] = _map(dotted(arg), subst) if arg is not None else None
        if isinstance(arg, cst.Call) and isinstance(arg.func, cst.Name) and arg.func.value in facts.classes:
            out[f"#inst:{p}"] = arg.func.value  # an object built for the call: its __call__ can be followed
    if function.is_method:
        out[function.params[0]] = "self"
    return out


class _Builder:
    def __init__(self, facts: "ModuleFacts") -> None:
        self.facts = facts

    def body(self, stmts: list[Stmt], top: Optional[Stmt], via_root: Optional[cst.CSTNode], subst: dict,
             depth: int, frame_fn, active: tuple) -> list[Event]:
        out: list[Event] = []
        for s in stmts:
            t = top or s
            for inner in [s, *self.facts.index.statements[s.order + 1: s.end_order + 1]]:
                if inner is not s and (inner.function is not s.function or _in_nested_def(inner, s)):
                    continue
                for e in self.statement(inner, t, via_root, subst, depth, frame_fn, active):
                    if e.stmt is None:
                        e.stmt = inner
                    out.append(e)
        return out

    def statement(self, s: Stmt, top: Stmt, via_root, subst, depth, frame_fn, active) -> list[Event]:
        facts = self.facts
        out: list[Event] = []
        node = s.node
        if isinstance(node, cst.Expr) and isinstance(node.value, cst.Attribute) and node.value.attr.value == "train":
            key = _map(dotted(node.value.value), subst)
            out.append(Event("train" if key else "unknown", key or "*", node.value, top, via_root or node.value))
        for call in s.calls:
            via = via_root or call
            mc = models.mode_call(call)
            if mc is not None:
                key = _map(mc[0], subst)
                if key is None:
                    out.append(Event("unknown", "*", call, top, via))
                elif mc[1] is False:
                    out.append(Event("eval", key, call, top, via))
                elif mc[1] is True:
                    local = mc[0].split(".")[0] not in subst and mc[0].split(".")[0] != "self"
                    out.append(Event("unknown" if depth and local else "train", "*" if depth and local else key,
                                     call, top, via))
                else:
                    out.append(Event("unknown", key, call, top, via))
                continue
            if is_training_step(facts, call):
                # a step on evaluation data (a loop over it, or a call that is handed it) is
                # EL205's finding, not a training phase
                if any(facts.is_eval_data_loop(l) for l in facts.enclosing_loops(s)):
                    continue
                if via_root is not None and self.eval_data_call(via_root):
                    if not _conditional_in_callee(s, frame_fn):
                        out.append(Event("eval_step", None, call, top, via))
                    continue
                out.append(Event("step", None, call, top, via, self.step_models(s, subst)))
                continue
            target = _resolve(facts, call, frame_fn, subst)
            if target is not None:
                if depth < MAX_DEPTH and id(target) not in active:
                    inner_subst = _bind(facts, target, call, subst)
                    if isinstance(call.func, cst.Name) and target.name == "__call__":
                        inner_subst[target.params[0]] = None  # the object's own attributes: unknown
                    elif frame_fn is not None and frame_fn.is_method and target.is_method:
                        inner_subst[target.params[0]] = subst.get(frame_fn.params[0], "self") if subst else "self"
                    out.extend(self.body(target.stmt.blocks.get("body", []), top, via, inner_subst, depth + 1,
                                         target, active + (id(target),)))
                else:
                    out.extend(Event("unknown", k, call, top, via) for k in self.model_args(call, subst))
                continue
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value == "forward":
                func = func.value
            callee = dotted(func)
            mapped = _map(callee, subst)
            if mapped is not None and callee not in facts.functions and callee not in facts.classes:
                out.append(Event("forward", mapped, call, top, via))
            mcall = method_call(call)
            if mcall is not None and mcall[1] == "apply":
                out.append(Event("unknown", _map(dotted(mcall[0]), subst) or "*", call, top, via))
            name = facts.qualify(call.func) or callee or ""
            if name not in _HARMLESS and last_part(name) not in _HARMLESS and \
                    not (mcall is not None and mcall[1] in _MODEL_METHODS_HARMLESS):
                out.extend(Event("unknown", k, call, top, via) for k in self.model_args(call, subst))
        return out

    def eval_data_call(self, call: cst.CSTNode) -> bool:
        """Is a call of the loop body handed evaluation data (`run_epoch(val_loader, ...)`)?"""
        if not isinstance(call, cst.Call):
            return False
        p = self.facts.patterns
        for a in call.args:
            d = dotted(a.value)
            if d is not None:
                base = last_part(d)
                if p.is_eval_data(base) and not p.is_train_data(base):
                    return True
        return False

    def model_args(self, call: cst.Call, subst) -> list[str]:
        out = []
        for a in call.args:
            d = dotted(a.value)
            if d is not None:
                out.append(_map(d, subst) or "*")
        return out

    def step_models(self, s: Stmt, subst) -> set:
        """Models run (or handed to a call) in the loop around a training step."""
        container = None
        for a in s.ancestors():
            if a.is_function:
                break
            if isinstance(a.node, (cst.For, cst.While)):
                container = a
                break
        if container is None:
            container = s.function
        calls = self.facts.calls_within(container) if container is not None else \
            [(c, x) for c, x in self.facts.index.calls if x.function is None]
        out = set()
        for c, _ in calls:
            func = c.func
            if isinstance(func, cst.Attribute) and func.attr.value == "forward":
                func = func.value
            d = dotted(func)
            if d is not None:
                out.add(_map(d, subst))
            for a in c.args:
                d = dotted(a.value)
                if d is not None:
                    out.add(_map(d, subst))
        out.discard(None)
        return out


def _conditional_in_callee(s: Stmt, function) -> bool:
    """Is the step under an `if` inside the called function (`if optimizer is not None:`)?"""
    for a in s.ancestors():
        if function is not None and a is function.stmt:
            return False
        if isinstance(a.node, (cst.If, cst.IfExp, cst.While)):
            return True
    return False


def _in_nested_def(inner: Stmt, outer: Stmt) -> bool:
    for a in inner.ancestors():
        if a is outer:
            return False
        if isinstance(a.node, (cst.FunctionDef, cst.ClassDef)):
            return True
    return False


def same_model(called: Optional[str], key: str) -> bool:
    if called is None:
        return False
    if called == "*" or called == key:
        return True
    if called == "self" and key.startswith("self."):
        return True
    return key == f"{called}.module" or called == f"{key}.module"


def loop_events(facts: "ModuleFacts", loop: Stmt) -> list[Event]:
    fn = facts.function_of(loop)
    return _Builder(facts).body(loop.blocks.get("body", []), None, None, {}, 0, fn, ())


def mode_leaks(facts: "ModuleFacts") -> list[ModeLeak]:
    """Loops in which an eval switch of a model is followed (in the same iteration or,
    wrapping around, in the next one) by a training step of that model with no train()
    switch of it in between. Innermost loops first; one leak per eval switch."""
    out: list[ModeLeak] = []
    seen: set[int] = set()
    for loop in sorted(loop_statements(facts), key=lambda s: -s.order):
        events = loop_events(facts, loop)
        if not any(e.kind == "step" for e in events):
            continue
        for i, e in enumerate(events):
            if e.kind != "eval" or id(e.node) in seen or _paired(events, e):
                continue
            leak = _scan(events, i, e)
            if leak is not None:
                seen.add(id(e.node))
                step, wraps = leak
                out.append(ModeLeak(loop, e.key, e, step, wraps))
    return out


def _paired(events: list[Event], ev: Event) -> bool:
    """`if phase == "train": model.train() else: model.eval()`: the branch picks the mode."""
    branches = [a for a in ev.stmt.ancestors() if isinstance(a.node, cst.If)] if ev.stmt is not None else []
    for e in events:
        if e.kind in ("train", "unknown") and same_model(e.key, ev.key) and e.stmt is not None:
            if e.stmt is ev.stmt or any(b.contains(e.stmt) for b in branches):
                return True
    return False


def _scan(events: list[Event], i: int, ev: Event):
    n = len(events)
    for k in range(1, n):
        j = (i + k) % n
        e = events[j]
        if e.kind in ("train", "unknown") and same_model(e.key, ev.key):
            return None
        if e.kind == "eval" and same_model(e.key, ev.key):
            return None  # another switch: judged on its own
        if e.kind == "step" and any(same_model(m, ev.key) or same_model(ev.key, m) for m in e.models):
            return e, j < i
    return None


# Names that say a loop trains on evaluation data on purpose (test-time adaptation).
_ADAPT_WORDS = ("adapt", "tta", "tent", "finetune", "fine_tune", "meta", "inner", "support")
_PHASE_WORDS = ("train", "phase", "mode", "split", "stage", "is_val", "is_test", "eval", "update")


@dataclass(eq=False)
class EvalStep:
    """An optimizer step inside an evaluation loop."""

    loop: Stmt
    call: cst.Call
    reason: str
    through: Optional[cst.Call] = None   # the backward/step reached through `call`


def eval_optimizer_steps(facts: "ModuleFacts") -> list[EvalStep]:
    """`optimizer.step()` in a loop over evaluation batches, or in an evaluation
    function's batch loop, outside any branch on the phase. A bare `backward()` is not
    enough (adversarial evaluation needs input gradients)."""
    from .patterns import snake
    p = facts.patterns
    out: list[EvalStep] = []
    seen: set[int] = set()
    for loop in facts.loops:
        name = loop.iter_name
        base = last_part(name.rstrip("[]")) if name else ""
        function = facts.function_of(loop.stmt)
        if base and p.is_eval_data(base) and not p.is_train_data(base):
            reason = f"loop over `{name}`"
        elif function is not None and p.is_eval_function(function.name) and "train" not in function.name.lower() \
                and facts.is_batch_loop(loop) and not _unit_test(facts, function):
            reason = f"function `{function.name}`"
        else:
            continue
        names = [function.name] if function is not None else []
        if function is not None and function.class_stmt is not None:
            names.append(function.class_stmt.node.name.value)
        if any(w in snake(n) for n in names for w in _ADAPT_WORDS):
            continue
        input_grads = _input_gradients(facts, loop.stmt, function)
        found = []
        for call, s in facts.calls_within(loop.stmt):
            if id(call) in seen or _under_phase_branch(s, loop.stmt) or s.function is not loop.stmt.function:
                continue
            if is_optimizer_step(facts, call) or (not input_grads and _is_backward(call)):
                found.append(call)
        if found:
            # one finding per loop: the optimizer step when there is one
            seen.update(id(c) for c, _ in facts.calls_within(loop.stmt))
            steps = [c for c in found if is_optimizer_step(facts, c)]
            out.append(EvalStep(loop.stmt, (steps or found)[0], reason))
    return out


def eval_phase_steps(facts: "ModuleFacts", reported: set) -> list[EvalStep]:
    """A call in a loop body that is handed evaluation data and reaches a backward pass
    or an optimizer step in the functions it runs (`run_epoch(val_loader, model,
    SimpleLossCompute(generator, criterion, None))`, whose `__call__` backpropagates)."""
    out: list[EvalStep] = []
    seen: set[int] = set()
    for loop in loop_statements(facts):
        for e in loop_events(facts, loop):
            if e.kind != "eval_step" or e.via is e.node or id(e.via) in seen or id(e.node) in reported:
                continue
            seen.add(id(e.via))
            out.append(EvalStep(loop, e.via, "a call handed evaluation data", e.node))
    return out


def _unit_test(facts: "ModuleFacts", function) -> bool:
    """`def test_trains(self):` in a TestCase or a tests module: a unit test, not evaluation."""
    if not function.name.startswith("test"):
        return False
    from pathlib import PurePath
    if facts.is_test_file or PurePath(facts.path).name.endswith("tests.py"):
        return True
    if function.class_stmt is not None:
        cls = facts.classes.get(function.class_stmt.node.name.value)
        return cls is not None and any(last_part(b) == "TestCase" for b in cls.bases)
    return False


def _is_backward(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "backward"


def _input_gradients(facts: "ModuleFacts", loop: Stmt, function) -> bool:
    """Gradient-based evaluation (saliency, adversarial examples): it reads input
    gradients, so a backward pass is part of the measurement."""
    from .walk import walk
    scope = function.stmt if function is not None else loop
    for call, _ in facts.calls_within(scope):
        short = last_part(facts.qualify(call.func) or dotted(call.func) or "")
        if short in ("requires_grad_", "retain_grad", "grad", "enable_grad") or \
                (isinstance(call.func, cst.Attribute) and call.func.attr.value in ("requires_grad_", "retain_grad")):
            return True
        if any(a.keyword is not None and a.keyword.value == "requires_grad" for a in call.args):
            return True
    for s in facts.index.statements[scope.order: scope.end_order + 1]:
        if s.line_node is None:
            continue
        for n in walk(s.node):
            if isinstance(n, cst.Attribute) and n.attr.value in ("grad", "requires_grad"):
                return True
    return False


def _under_phase_branch(s: Stmt, loop: Stmt) -> bool:
    from .walk import names_in
    for a in s.ancestors():
        if a is loop:
            return False
        if isinstance(a.node, (cst.If, cst.While)):
            words = {n.lower() for n in names_in(a.node.test)}
            for attr in _attributes(a.node.test):
                words.add(attr.lower())
            if any(w in n for n in words for w in _PHASE_WORDS):
                return True
    return False


def _attributes(expr) -> list[str]:
    from .walk import walk
    out = []
    for n in walk(expr):
        if isinstance(n, cst.Attribute):
            out.append(n.attr.value)
        elif isinstance(n, cst.SimpleString):
            out.append(n.value.strip("'\""))
    return out


@dataclass(eq=False)
class StaleRead:
    """An evaluation loop reading a name only the training loop defines."""

    name: str
    node: cst.Name             # the first read inside the evaluation loop
    eval_loop: Stmt
    train_loop: Stmt


def stale_reads(facts: "ModuleFacts") -> list[StaleRead]:
    from .flow import statements_in
    eval_loops = []
    for loop in facts.loops:
        if facts.backprops_in(loop.stmt) or not facts.is_batch_loop(loop):
            continue
        if facts.is_eval_data_loop(loop) or facts.eval_context(loop.stmt) not in (None, "lightning"):
            if not any(e.stmt.contains(loop.stmt) for e in eval_loops):
                eval_loops.append(loop)
    train_loops = [l for l in facts.loops if facts.is_batch_loop(l) and facts.backprops_in(l.stmt)]
    out: list[StaleRead] = []
    for e in eval_loops:
        scope = facts.index.function_body(e.stmt.function)
        inside_e = [e.stmt, *statements_in(e.stmt, facts.index)]
        stored_in_e = set().union(*(s.stores for s in inside_e))
        for t in train_loops:
            if t.stmt.function is not e.stmt.function or t.stmt.order > e.stmt.order:
                continue
            # An evaluation loop nested in the training loop (periodic validation) may
            # read the training values on purpose (logging); only the batch is stale.
            produced = _batch_targets(t) if t.stmt.contains(e.stmt) else _training_results(facts, t)
            for s in inside_e[1:]:
                if s.function is not e.stmt.function:
                    continue
                for name in sorted(s.loads & produced - stored_in_e):
                    if any(name in x.stores and not _inside_training(x, train_loops) for x in scope):
                        continue
                    if name in _params(e.stmt.function):
                        continue
                    node = _first_name(s.node, name)
                    if node is not None and not any(r.name == name and r.eval_loop is e.stmt for r in out):
                        out.append(StaleRead(name, node, e.stmt, t.stmt))
    return out


def _batch_targets(loop) -> set:
    targets = list(loop.targets)
    it = loop.node.iter
    if isinstance(it, cst.Call) and last_part(dotted(it.func)) == "enumerate" and targets:
        targets = targets[1:]
    return set(targets)


def _training_results(facts: "ModuleFacts", loop) -> set:
    """Names the training loop computes from data: its batch targets, model outputs, losses."""
    from .flow import statements_in
    out = _batch_targets(loop)
    for s in statements_in(loop.stmt, facts.index):
        if not isinstance(s.node, (cst.Assign, cst.AnnAssign)):
            continue
        for call in s.calls:
            name = (dotted(call.func) or "").lower()
            if facts.model_key(call) is not None or "criterion" in name or "loss" in name:
                out |= s.stores
                break
    return out


def _inside_training(stmt: Stmt, train_loops) -> bool:
    return any(t.stmt is stmt or t.stmt.contains(stmt) for t in train_loops)


def _params(function: Optional[Stmt]) -> set:
    if function is None:
        return set()
    p = function.node.params
    return {x.name.value for x in (*p.posonly_params, *p.params, *p.kwonly_params)}


def _first_name(node: cst.CSTNode, name: str) -> Optional[cst.Name]:
    from .walk import walk
    for n in walk(node):
        if isinstance(n, cst.Name) and n.value == name:
            return n
    return None
