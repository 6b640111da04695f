"""Model selection: what drives checkpointing, early stopping and LR scheduling, and
which data the driving metric was computed on ("test", "val" or unknown).

The data of a metric is read from the arguments of the call it was computed by
(`evaluate(model, test_loader)`), from the loop it was accumulated in
(`for x, y in test_loader: test_loss += ...`), from the data an in-file evaluation
function iterates over, and only last from the metric's own name (`test_acc`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from . import flow
from .exprs import dotted, keyword, last_part, method_call
from .patterns import _DATA_SUFFIX, snake
from .walk import walk

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts
    from .index import Stmt

_TEST = re.compile(r"(?:^|_)(?:test|testing|holdout|heldout)" + _DATA_SUFFIX)
_SAVE_WORDS = ("save", "deepcopy", "state_dict", "checkpoint")
_PATIENCE_WORDS = ("patience", "counter", "bad_epoch", "no_improve", "wait", "stale", "early_stop", "stop")
_BEST_WORDS = ("best", "min_", "max_", "min(", "max(", "lowest", "highest", "top")
_KERAS_CALLBACKS = ("EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau")


def is_test_name(name: str) -> bool:
    return bool(_TEST.search(snake(name)))


@dataclass(eq=False)
class Selection:
    kind: str                  # "checkpoint" | "early-stopping" | "scheduler" | "keras-callbacks"
    node: cst.CSTNode          # the metric expression (or `validation_data=` value)
    metric: str                # its text
    data: Optional[str]        # "test" | "val" | None
    stmt: "Stmt"


class _Data:
    def __init__(self, facts: "ModuleFacts") -> None:
        self.facts = facts

    def kind(self, name: str) -> Optional[str]:
        p = self.facts.patterns
        if p.is_train_data(name) and not is_test_name(name):
            return None
        if is_test_name(name):
            return "test"
        if p.is_eval_data(name):
            return "val"
        return None

    def of_names(self, names) -> Optional[str]:
        kinds = {self.kind(n) for n in names} - {None}
        return kinds.pop() if len(kinds) == 1 else None

    def arg_names(self, expr: cst.CSTNode) -> tuple[set, list]:
        """Names read as data in an expression (callee names excluded), and the calls."""
        callees = set()
        calls = []
        for n in walk(expr):
            if isinstance(n, cst.Call):
                calls.append(n)
                if isinstance(n.func, cst.Name):
                    callees.add(id(n.func))
        names = {n.value for n in walk(expr) if isinstance(n, cst.Name) and id(n) not in callees}
        return names, calls

    def of_metric(self, expr: cst.CSTNode, at: "Stmt", depth: int = 0) -> Optional[str]:
        names, calls = self.arg_names(expr)
        kinds = {self.of_variable(n, at, depth) for n in names if not self._is_model_or_callable(n)}
        kinds.discard(None)
        if len(kinds) == 1:
            return kinds.pop()
        return self.of_calls(calls) if not kinds else None

    def of_variable(self, name: str, at: "Stmt", depth: int) -> Optional[str]:
        facts = self.facts
        s = flow.last_assignment_before(facts.index, name, at)
        if s is not None and depth < 3:
            for loop in facts.enclosing_loops(s):
                if loop.iter_name:
                    k = self.kind(last_part(loop.iter_name.rstrip("[]")))
                    if k is not None:
                        return k
            value = getattr(s.node, "value", None)
            if isinstance(value, cst.BaseExpression):
                names, calls = self.arg_names(value)
                names.discard(name)
                d = self.of_names(names) or self.of_calls(calls)
                if d is not None:
                    return d
                for n in sorted(names):
                    if n != name and not self._is_model_or_callable(n):
                        inner = self.of_variable(n, s, depth + 1)
                        if inner is not None:
                            return inner
        return self.kind(name)

    def _is_model_or_callable(self, name: str) -> bool:
        f = self.facts
        return name in f.functions or name in f.classes or name in f.aliases or f.patterns.is_model(name)

    def of_calls(self, calls) -> Optional[str]:
        """An in-file function called without data arguments, whose loops iterate over
        one kind of module-level data."""
        for call in calls:
            if not isinstance(call.func, cst.Name):
                continue
            fs = self.facts.functions.get(call.func.value, [])
            if len(fs) != 1:
                continue
            kinds = set()
            for loop in self.facts.loops:
                if fs[0].stmt.contains(loop.stmt) and loop.iter_name:
                    base = last_part(loop.iter_name.rstrip("[]"))
                    if base not in fs[0].params:
                        kinds.add(self.kind(base))
            kinds.discard(None)
            if len(kinds) == 1:
                return kinds.pop()
        return None


def selections(facts: "ModuleFacts") -> list[Selection]:
    data = _Data(facts)
    out: list[Selection] = []
    for stmt in facts.statements:
        node = stmt.node
        if isinstance(node, cst.If):
            out.extend(_checkpoint(facts, data, stmt))
        for call in stmt.calls:
            out.extend(_call_selection(facts, data, call, stmt))
    return out


def _text(node) -> str:
    return cst.Module([]).code_for_node(node)


def _checkpoint(facts, data: _Data, stmt) -> list[Selection]:
    tests = [stmt.node.test]
    while isinstance(tests[-1], cst.BooleanOperation) and isinstance(tests[-1].operator, cst.And):
        tests[-1:] = [tests[-1].left, tests[-1].right]  # `if epoch > 10 and acc < best - 5:`
    for test in tests:
        found = _compare(facts, data, stmt, test)
        if found:
            return found
    return []


def _compare(facts, data: _Data, stmt, test) -> list[Selection]:
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return []
    op = test.comparisons[0].operator
    if not isinstance(op, (cst.LessThan, cst.GreaterThan, cst.LessThanEqual, cst.GreaterThanEqual)):
        return []
    left, right = test.left, test.comparisons[0].comparator
    sides = [(left, right), (right, left)]
    for metric, other in sides:
        other_text = snake(_text(other))
        if not any(w in other_text for w in _BEST_WORDS):
            continue
        if any(w in snake(_text(metric)) for w in _BEST_WORDS):
            continue
        kind = _selection_effect(facts, stmt)
        if kind is None:
            return []
        return [Selection(kind, metric, _text(metric), data.of_metric(metric, stmt), stmt)]
    return []


def _selection_effect(facts, stmt) -> Optional[str]:
    """What the `if metric better than best:` block does with the model."""
    inside = flow.statements_in(stmt, facts.index)
    for s in inside:
        for call in s.calls:
            name = snake(facts.qualify(call.func) or dotted(call.func) or _callee_attr(call))
            if any(w in name for w in _SAVE_WORDS):
                return "checkpoint"
    for s in inside:
        if isinstance(s.node, cst.Break) or any(any(w in snake(n) for w in _PATIENCE_WORDS) for n in s.stores):
            return "early-stopping"
    return None


def _callee_attr(call) -> str:
    return call.func.attr.value if isinstance(call.func, cst.Attribute) else ""


def _bound_callee(facts, name: Optional[str], at) -> str:
    if not name:
        return ""
    value = flow.assigned_value(facts.index, name, at)
    if isinstance(value, cst.Call):
        return facts.qualify(value.func) or dotted(value.func) or ""
    return ""


def _call_selection(facts, data: _Data, call: cst.Call, stmt) -> list[Selection]:
    mc = method_call(call)
    args = [a for a in call.args if a.keyword is None and not a.star]
    if mc is not None and mc[1] == "step":
        owner = dotted(mc[0]) or ""
        bound = _bound_callee(facts, owner, stmt)
        metric = args[0].value if args else (keyword(call, "metrics").value if keyword(call, "metrics") else None)
        if metric is None:
            return []
        if "sched" in snake(owner) or bound.endswith("ReduceLROnPlateau"):
            return [Selection("scheduler", metric, _text(metric), data.of_metric(metric, stmt), stmt)]
        if "early" in snake(owner) or "stopp" in snake(owner) or "EarlyStopping" in bound:
            return [Selection("early-stopping", metric, _text(metric), data.of_metric(metric, stmt), stmt)]
        return []
    func = dotted(call.func)
    if func is not None and mc is None and args:
        bound = _bound_callee(facts, func, stmt)
        if "early_stop" in snake(func) or "stopper" in snake(func) or "EarlyStopping" in bound:
            metric = args[0].value
            return [Selection("early-stopping", metric, _text(metric), data.of_metric(metric, stmt), stmt)]
    if mc is not None and mc[1] == "fit":
        vd = keyword(call, "validation_data")
        cb = keyword(call, "callbacks")
        if vd is None or cb is None or not _has_selection_callback(facts, cb.value, stmt):
            return []
        names, _ = data.arg_names(vd.value)
        return [Selection("keras-callbacks", vd.value, _text(vd.value), data.of_names(names), stmt)]
    return []


def _has_selection_callback(facts, expr, at) -> bool:
    if isinstance(expr, cst.Name):
        expr = flow.assigned_value(facts.index, expr.value, at) or expr
    if not isinstance(expr, (cst.List, cst.Tuple)):
        return False
    for el in expr.elements:
        v = el.value
        if isinstance(v, cst.Name):
            v = flow.assigned_value(facts.index, v.value, at) or v
        if isinstance(v, cst.Call):
            name = last_part(facts.qualify(v.func) or dotted(v.func) or "")
            if name in _KERAS_CALLBACKS:
                if name == "ModelCheckpoint":
                    sb = keyword(v, "save_best_only")
                    if sb is None or _text(sb.value) != "True":
                        continue
                return True
    return False
