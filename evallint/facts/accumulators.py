"""Accumulators in batch loops: what they add up, and what they are divided by.

`correct += (pred == y).sum().item()` adds a count; `total += y.size(0)` the number of
samples; `running_loss += loss.item()` a per-batch mean (for a mean-reduced loss);
`running_loss += loss.item() * x.size(0)` a per-sample sum; `n_batches += 1` one per
batch. A division after (or inside) the loop divides by samples (`len(loader.dataset)`,
a sample counter) or by batches (`len(loader)`, a batch counter, `i + 1` of an
enumerate). Everything else is unknown, and rules stay quiet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from .exprs import dotted, last_part, method_call, number, value_assigned
from .flow import last_assignment_before, scope_statements
from .loaders import is_loader_name
from .loops import LoopInfo
from .index import Stmt
from .walk import walk

# Kinds of accumulated value.
COUNT = "count"                # correct predictions in the batch
SAMPLES = "samples"            # the number of samples in the batch: y.size(0)
BATCH_SIZE = "batch_size"      # a constant batch size: total += batch_size
ONE = "one"                    # a batch counter: n += 1
SAMPLE_SUM = "sample_sum"      # a per-sample sum: loss.item() * x.size(0)
BATCH_MEAN = "batch_mean"      # a per-batch mean: loss.item() (mean reduction), acc.mean()
BATCH_SUM = "batch_sum"        # a per-batch sum of per-sample values: sum-reduced loss

# Denominator kinds.
BY_SAMPLES = "samples"
BY_BATCHES = "batches"

_PEEL_METHODS = {"item", "cpu", "detach", "double", "float", "numpy", "long", "int", "clone", "squeeze"}
_PEEL_FUNCS = {"float", "int"}
_SUM_CALLS = {"sum", "count_nonzero", "nansum"}
_SIZE_ATTRS = {"num_graphs", "num_samples"}


@dataclass(eq=False)
class Value:
    kind: Optional[str]            # one of the kinds above; None: unknown
    metric: Optional[str] = None   # "loss" | "accuracy" for means and sums
    loss: object = None            # the LossInfo behind a loss value


@dataclass(eq=False)
class Accumulator:
    name: str
    loop: LoopInfo                 # the innermost batch loop it accumulates over
    updates: list[Stmt] = field(default_factory=list)
    values: list[cst.BaseExpression] = field(default_factory=list)
    init: Optional[Stmt] = None
    init_value: Optional[cst.BaseExpression] = None
    kinds: list[Value] = field(default_factory=list)

    @property
    def value(self) -> Value:
        """The kind when every update agrees, else unknown."""
        kinds = {(v.kind, v.metric) for v in self.kinds}
        return self.kinds[0] if len(kinds) == 1 else Value(None)

    @property
    def starts_at_zero(self) -> bool:
        return self.init_value is not None and number(self.init_value) == 0


@dataclass(eq=False)
class Division:
    node: cst.CSTNode              # the `/` BinaryOperation, or the `/=` AugAssign
    stmt: Stmt
    denominator: cst.BaseExpression
    by: Optional[str]              # BY_SAMPLES | BY_BATCHES | None
    loader: Optional[str] = None   # the loader named in `len(loader)` / `len(loader.dataset)`


def added_value(node: cst.CSTNode) -> Optional[tuple[str, cst.BaseExpression]]:
    """`name += v` or `name = name + v` -> (name, v)."""
    if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign) \
            and isinstance(node.target, cst.Name):
        return node.target.value, node.value
    if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
        name = node.targets[0].target.value
        v = node.value
        if isinstance(v, cst.BinaryOperation) and isinstance(v.operator, cst.Add) \
                and isinstance(v.left, cst.Name) and v.left.value == name:
            return name, v.right
    return None


def peel(expr: cst.BaseExpression) -> cst.BaseExpression:
    """`float(x.sum().item())` -> `x.sum()`: conversions that keep the value."""
    for _ in range(8):
        expr = expr.with_changes(lpar=(), rpar=()) if getattr(expr, "lpar", None) else expr
        mc = method_call(expr)
        if mc is not None and mc[1] in _PEEL_METHODS and not expr.args:
            expr = mc[0]
            continue
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value in _PEEL_FUNCS \
                and len(expr.args) == 1:
            expr = expr.args[0].value
            continue
        if isinstance(expr, cst.Attribute) and expr.attr.value == "data":
            expr = expr.value
            continue
        return expr
    return expr


def is_sample_count(expr: cst.BaseExpression) -> bool:
    """`y.size(0)`, `len(y)`, `y.shape[0]`, `y.numel()`, `data.num_graphs`."""
    expr = peel(expr)
    if isinstance(expr, cst.Call):
        mc = method_call(expr)
        if mc is not None and mc[1] == "size" and len(expr.args) == 1 and number(expr.args[0].value) == 0:
            return True
        if mc is not None and mc[1] == "numel" and not expr.args:
            return True
        if isinstance(expr.func, cst.Name) and expr.func.value == "len" and len(expr.args) == 1:
            inner = dotted(expr.args[0].value)
            return inner is None or not (is_loader_name(inner) or inner.endswith(".dataset"))
    if isinstance(expr, cst.Subscript) and len(expr.slice) == 1 \
            and isinstance(expr.slice[0].slice, cst.Index) and number(expr.slice[0].slice.value) == 0:
        base = expr.value
        if isinstance(base, cst.Attribute) and base.attr.value == "shape":
            return True
        mc = method_call(base)
        if mc is not None and mc[1] == "size" and not base.args:
            return True
    if isinstance(expr, cst.Attribute) and expr.attr.value in _SIZE_ATTRS:
        return True
    return False


def _call_name(node: cst.Call) -> str:
    f = node.func
    return f.attr.value if isinstance(f, cst.Attribute) else (f.value if isinstance(f, cst.Name) else "")


def _is_equality(node) -> bool:
    return isinstance(node, cst.Comparison) and any(isinstance(c.operator, cst.Equal) for c in node.comparisons)


def comparison_kind(expr: cst.BaseExpression, resolve=None) -> Optional[str]:
    """COUNT for a summed `==` comparison, BATCH_MEAN for its mean, else None.
    `resolve(name)` gives what a name is bound to (`equals = top_class == labels`)."""
    has_eq = False
    calls = set()
    for node in walk(expr):
        if _is_equality(node):
            has_eq = True
        elif isinstance(node, cst.Name) and resolve is not None:
            bound = resolve(node.value)
            if bound is not None and (_is_equality(peel(bound)) or
                                      (isinstance(bound, cst.Call) and _call_name(bound) == "eq")):
                has_eq = True
        elif isinstance(node, cst.Call):
            name = _call_name(node)
            calls.add(name)
            if name == "eq":
                has_eq = True
    if not has_eq:
        return None
    if "mean" in calls:
        return BATCH_MEAN
    if calls & _SUM_CALLS:
        return COUNT
    return None


class AccumulatorAnalysis:
    """Reads a ModuleFacts; computed once per module (see ModuleFacts.accumulators)."""

    def __init__(self, facts) -> None:
        self.facts = facts
        self._loss_call_stmts = {id(c.call): c for c in facts.loss_calls}

    # Finding accumulators ----------------------------------------------------------
    def collect(self) -> list[Accumulator]:
        facts = self.facts
        found: dict[tuple[int, str], Accumulator] = {}
        for loop in facts.loops:
            if not facts.is_batch_loop(loop):
                continue
            for stmt in facts.index.statements[loop.stmt.order + 1: loop.stmt.end_order + 1]:
                pair = added_value(stmt.node)
                if pair is None or stmt.function is not loop.stmt.function:
                    continue
                inner = [l for l in facts.enclosing_loops(stmt) if facts.is_batch_loop(l)]
                if not inner or inner[0] is not loop:
                    continue
                name, value = pair
                acc = found.get((id(loop), name))
                if acc is None:
                    init = last_assignment_before(facts.index, name, loop.stmt)
                    init_value = value_assigned(init.node, name) if init is not None else None
                    acc = found[(id(loop), name)] = Accumulator(name, loop, init=init, init_value=init_value)
                acc.updates.append(stmt)
                acc.values.append(value)
                acc.kinds.append(self.value_kind(value, stmt, loop))
        return list(found.values())

    # What is added -------------------------------------------------------------------
    def loop_binding(self, name: str, stmt: Stmt, loop: LoopInfo) -> Optional[cst.BaseExpression]:
        """The value `name` was last given inside the loop before `stmt`, if any."""
        s = last_assignment_before(self.facts.index, name, stmt)
        if s is None or not loop.stmt.contains(s):
            return None
        return value_assigned(s.node, name)

    def loss_of(self, expr: cst.BaseExpression, stmt: Stmt, loop: LoopInfo, depth: int = 0):
        """The LossCall whose result `expr` is (through one name bound in the loop)."""
        expr = peel(expr)
        if isinstance(expr, cst.Call) and id(expr) in self._loss_call_stmts:
            return self._loss_call_stmts[id(expr)]
        if isinstance(expr, cst.Name) and depth < 2:
            bound = self.loop_binding(expr.value, stmt, loop)
            if bound is not None:
                return self.loss_of(bound, stmt, loop, depth + 1)
        return None

    def value_kind(self, expr: cst.BaseExpression, stmt: Stmt, loop: LoopInfo, depth: int = 0) -> Value:
        raw = expr
        expr = peel(expr)
        if number(expr) == 1:
            return Value(ONE)
        if is_sample_count(expr):
            return Value(SAMPLES)
        if isinstance(expr, cst.Attribute) and expr.attr.value == "batch_size":
            return Value(BATCH_SIZE)
        if isinstance(expr, cst.Name):
            bound = self.loop_binding(expr.value, stmt, loop)
            if bound is not None:
                return self.value_kind(bound, stmt, loop, depth + 1) if depth < 2 else Value(None)
            if expr.value not in loop.targets and _is_batch_size_name(self.facts, expr.value, loop.stmt):
                return Value(BATCH_SIZE)
        loss = self.loss_of(raw, stmt, loop)
        if loss is not None:
            return _loss_value(loss.loss)
        mc = method_call(expr)
        if mc is not None and mc[1] in ("sum", "mean") and not expr.args:
            inner = self.loss_of(mc[0], stmt, loop)
            if inner is not None and inner.loss.reduction == "none":
                return Value(BATCH_SUM if mc[1] == "sum" else BATCH_MEAN, "loss", inner.loss)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
            for a, b in ((expr.left, expr.right), (expr.right, expr.left)):
                if is_sample_count(a) or self.value_kind(a, stmt, loop, 2).kind == SAMPLES:
                    other = self.value_kind(b, stmt, loop, depth + 1) if depth < 2 else Value(None)
                    if other.kind == BATCH_MEAN:
                        return Value(SAMPLE_SUM, other.metric, other.loss)
                    return Value(None)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Divide):
            if comparison_kind(expr.left) == COUNT and is_sample_count(expr.right):
                return Value(BATCH_MEAN, "accuracy")
            return Value(None)
        cmp = comparison_kind(expr, lambda n: self.loop_binding(n, stmt, loop))
        if cmp == COUNT:
            return Value(COUNT)
        if cmp == BATCH_MEAN:
            return Value(BATCH_MEAN, "accuracy")
        if isinstance(expr, cst.Call) and "accuracy" in _call_name(expr).lower() \
                and self.facts.qualify(expr.func) in ("sklearn.metrics.accuracy_score",):
            return Value(BATCH_MEAN, "accuracy")
        return Value(None)

    # What it is divided by -------------------------------------------------------------
    def divisions(self, acc: Accumulator) -> list[Division]:
        facts = self.facts
        out = []
        first = acc.updates[0]
        for s in scope_statements(facts.index, acc.loop.stmt):
            if s.order <= first.order or any(s is u for u in acc.updates):
                continue
            node = s.node
            if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.DivideAssign) \
                    and isinstance(node.target, cst.Name) and node.target.value == acc.name:
                out.append(self._division(node, s, node.value, acc))
        for binop, s in facts.index.binops:
            if s.order <= first.order or s.function is not acc.loop.stmt.function \
                    or not isinstance(binop.operator, cst.Divide):
                continue
            if _numerator_name(binop.left) == acc.name:
                out.append(self._division(binop, s, binop.right, acc))
        return out

    def _division(self, node, stmt: Stmt, denominator, acc: Accumulator) -> Division:
        by, loader = self.denominator_kind(denominator, stmt, acc.loop)
        return Division(node, stmt, denominator, by, loader)

    def denominator_kind(self, expr, stmt: Stmt, loop: LoopInfo, depth: int = 0) -> tuple[Optional[str], Optional[str]]:
        facts = self.facts
        expr = peel(expr)
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "len" \
                and len(expr.args) == 1:
            inner = dotted(expr.args[0].value)
            if inner is None:
                return None, None
            if inner.endswith((".dataset", ".sampler")):
                return BY_SAMPLES, inner.rsplit(".", 1)[0]
            if facts.loader_info(inner, stmt) is not None or (inner == loop.iter_name and is_loader_name(inner)):
                return BY_BATCHES, inner
            c = facts.construction(inner, stmt)
            if c is not None and c.kind != "loader":
                return BY_SAMPLES, None
            if "." not in inner and any(isinstance(l.dataset_expr(), cst.Name) and l.dataset_expr().value == inner
                                        and l.stmt.function is stmt.function
                                        for l in facts.constructions if l.kind == "loader"):
                return BY_SAMPLES, None  # the dataset a loader is built from
            if _is_dataset_name(inner):
                return BY_SAMPLES, None
            return None, None
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add) and number(expr.right) == 1 \
                and isinstance(expr.left, cst.Name) and expr.left.value == enumerate_index(loop):
            return BY_BATCHES, loop.iter_name
        if isinstance(expr, cst.Name):
            for other in facts.accumulators:
                if other.name == expr.value and other.loop is loop:
                    kind = other.value.kind
                    if kind == SAMPLES:
                        return BY_SAMPLES, None
                    if kind == ONE:
                        return BY_BATCHES, loop.iter_name
                    return None, None
            if depth < 2:
                bound = last_assignment_before(facts.index, expr.value, stmt)
                if bound is not None and not any(u is bound for a in facts.accumulators for u in a.updates):
                    v = value_assigned(bound.node, expr.value)
                    if v is not None:
                        return self.denominator_kind(v, bound, loop, depth + 1)
        return None, None


def enumerate_index(loop: LoopInfo) -> Optional[str]:
    """`for i, batch in enumerate(loader)` -> "i"."""
    node = loop.node
    if isinstance(node.iter, cst.Call) and isinstance(node.iter.func, cst.Name) and node.iter.func.value == "enumerate" \
            and isinstance(node.target, cst.Tuple) and node.target.elements \
            and isinstance(node.target.elements[0].value, cst.Name):
        return node.target.elements[0].value.value
    return None


def _numerator_name(expr) -> Optional[str]:
    """`acc`, `acc.item()`, `float(acc)`, `100 * acc`, `acc * 100.0` -> "acc"."""
    expr = peel(expr)
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply):
        if number(expr.left) is not None:
            expr = peel(expr.right)
        elif number(expr.right) is not None:
            expr = peel(expr.left)
    return expr.value if isinstance(expr, cst.Name) else None


def _is_dataset_name(name: str) -> bool:
    n = last_part(name).lower()
    return n.endswith(("dataset", "_ds", "_set", "data")) and not is_loader_name(n)


_BATCH_SIZE_NAMES = {"batch_size", "bs", "batchsize", "batch_sz", "b_size"}


def _is_batch_size_name(facts, name: str, at: Stmt) -> bool:
    """A name that holds a constant batch size: `batch_size`, `BATCH_SIZE`, `bs`."""
    n = name.lower()
    if n not in _BATCH_SIZE_NAMES and not n.endswith("_batch_size"):
        return False
    bound = last_assignment_before(facts.index, name, at)
    if bound is None:
        return True  # a parameter or a global: constant over the loop
    v = value_assigned(bound.node, name)
    return v is not None and (number(v) is not None or isinstance(v, (cst.Attribute, cst.Name)))


def _loss_value(loss) -> Value:
    if loss.reduction == "mean":
        return Value(BATCH_MEAN, "loss", loss)
    if loss.reduction == "sum":
        return Value(BATCH_SUM, "loss", loss)
    return Value(None)


def carries_graph(facts, expr: cst.BaseExpression, stmt: Stmt, loop: LoopInfo) -> Optional[str]:
    """If `expr` is a loss tensor that still holds its autograd graph when `stmt` runs,
    its name: a plain name that is `.backward()`-ed in the same loop (proof that it
    requires grad), whose binding in the loop is not `.item()`/`.detach()`/`.data`, and
    that is added outside `no_grad`."""
    if not isinstance(expr, cst.Name) or facts.grad_disabled(stmt):
        return None
    name = expr.value
    bound = facts.accumulator_analysis.loop_binding(name, stmt, loop)
    if bound is not None and not _keeps_graph(bound):
        return None
    binding = last_assignment_before(facts.index, name, stmt)
    if binding is None or not loop.stmt.contains(binding):
        return None  # not computed in this loop
    for call, s in facts.calls_within(loop.stmt):
        mc = method_call(call)
        if mc is not None and mc[1] == "backward" and isinstance(mc[0], cst.Name) and mc[0].value == name:
            return name
    return None


def _keeps_graph(expr) -> bool:
    """False when the outermost operation drops the graph (`.item()`, `.detach()`, ...)."""
    mc = method_call(expr)
    if mc is not None and mc[1] in ("item", "detach", "tolist", "numpy"):
        return False
    if isinstance(expr, cst.Attribute) and expr.attr.value == "data":
        return False
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value in ("float", "int"):
        return False
    return number(expr) is None


def loop_loader(facts, loop: LoopInfo):
    """(iterates a loader?, its LoaderInfo or None). A loop over a dataset or a list
    yields samples, not batches."""
    name = loop.iter_name
    if name is None:
        return False, None
    info = facts.loader_info(name, loop.stmt)
    if info is not None:
        return info.batches_len, info
    return is_loader_name(name), None
