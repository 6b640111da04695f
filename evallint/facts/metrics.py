"""torchmetrics objects: where each is built, and where it is updated, called
(update + batch value), computed, reset and logged.

A metric object is a name or `self.` attribute bound to a torchmetrics class (by any
import path; `torchmetrics.functional` calls are values, not objects), a
`MetricCollection`, an in-file subclass of `torchmetrics.Metric`, or the `clone()` of
another metric object. What a metric's epoch value is made of (its averaging, whether
a batch-size-weighted mean of batch values equals it) is decided here too, from the
torchmetrics defaults; when an argument is not a literal the answer is None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from .exprs import argument, dotted, keyword, last_part, literal_value, method_call, strip_method_chain
from .index import Stmt

FUNCTIONAL_PREFIX = "torchmetrics.functional"
METRIC_BASES = {"torchmetrics.Metric", "torchmetrics.metric.Metric"}
COLLECTION = "MetricCollection"
_DEVICE_CHAIN = {"to", "cuda", "cpu", "double", "float", "half", "set_dtype"}

# The task-specific classes built on the multiclass/multilabel stat scores default to
# average="macro" since they were introduced (0.10); the task wrappers (`Accuracy(task=
# "multiclass")`, `F1Score(task=...)`, ...) and the pre-0.11 classes default to "micro".
# See Lightning-AI/torchmetrics#2320 (the functional interface does the same).
_STAT_SCORE_METRICS = ("Accuracy", "Precision", "Recall", "F1Score", "FBetaScore", "Specificity",
                       "HammingDistance", "NegativePredictiveValue")
MACRO_DEFAULT_CLASSES = frozenset(f"{kind}{m}" for kind in ("Multiclass", "Multilabel") for m in _STAT_SCORE_METRICS)
MACRO_DEFAULT_FUNCTIONS = frozenset(
    f"{kind}_{m}" for kind in ("multiclass", "multilabel")
    for m in ("accuracy", "precision", "recall", "f1_score", "fbeta_score", "specificity",
              "hamming_distance", "negative_predictive_value"))
# Positional parameters before `average` (an argument list this long may hold it).
_REQUIRED_POSITIONAL = {"MulticlassFBetaScore": 2, "MultilabelFBetaScore": 2}
TASK_WRAPPERS = frozenset(_STAT_SCORE_METRICS)

# Metrics whose batch-size-weighted mean of batch values equals the value over the
# epoch (every sample counts once in a mean over samples).
_MEAN_OVER_SAMPLES = frozenset({"BinaryAccuracy", "MeanSquaredError", "MeanAbsoluteError",
                                "MeanSquaredLogError", "MeanAbsolutePercentageError", "MeanMetric"})
_ACCURACY_CLASSES = frozenset({"Accuracy", "MulticlassAccuracy", "MultilabelAccuracy"})
_SINGLE_LABEL_MICRO = frozenset({"Precision", "Recall", "F1Score", "MulticlassPrecision", "MulticlassRecall",
                                 "MulticlassF1Score"})

# Aggregators kept across epochs on purpose: the best value so far.
RUNNING_BEST = frozenset({"MaxMetric", "MinMetric"})

# Calls that use a metric without changing its state (arguments of these do not escape).
_HARMLESS_CALLS = {"print", "str", "repr", "format", "float", "int", "len", "isinstance", "type", "id"}


@dataclass(eq=False)
class MetricObject:
    key: str                         # "self.val_acc" or "acc"
    call: cst.Call                   # the construction (or the clone call)
    stmt: Stmt
    cls: str                         # short class name: "MulticlassAccuracy", "MetricCollection"
    owner: Optional[Stmt]            # the class (for self. attributes) or function it lives in
    source: Optional["MetricObject"] = None   # what it was cloned from
    custom: bool = False             # an in-file Metric subclass

    @property
    def origin(self) -> "MetricObject":
        m = self
        while m.source is not None and m.source is not m:
            m = m.source
        return m

    @property
    def is_collection(self) -> bool:
        return self.origin.cls == COLLECTION


@dataclass(eq=False)
class MetricUse:
    metric: MetricObject
    kind: str            # "forward" | "update" | "compute" | "reset" | "passed" | "other"
    call: cst.Call
    stmt: Stmt


@dataclass(eq=False)
class MetricTable:
    objects: list[MetricObject] = field(default_factory=list)
    uses: list[MetricUse] = field(default_factory=list)
    by_call: dict[int, MetricUse] = field(default_factory=dict)   # id(call) -> forward/update/compute use

    def uses_of(self, metric: MetricObject, kind: Optional[str] = None) -> list[MetricUse]:
        return [u for u in self.uses if u.metric is metric and (kind is None or u.kind == kind)]


def strip_chain(expr) -> Optional[cst.Call]:
    """`Accuracy(...).to(device)` -> the `Accuracy(...)` call."""
    return strip_method_chain(expr, _DEVICE_CHAIN)


def is_metric_class_name(qualified: str) -> bool:
    return qualified.startswith("torchmetrics.") and not qualified.startswith(FUNCTIONAL_PREFIX) \
        and last_part(qualified)[:1].isupper() and last_part(qualified) != "Metric"


def custom_metric_classes(classes) -> set[str]:
    """In-file subclasses of torchmetrics.Metric (directly or through in-file classes)."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, cls in classes.items():
            if name not in found and any(b in METRIC_BASES or last_part(b) in found for b in cls.bases):
                found.add(name)
                changed = True
    return found


def build(facts) -> MetricTable:
    table = MetricTable()
    custom = custom_metric_classes(facts.classes)
    scoped: dict[tuple[int, str], MetricObject] = {}
    for stmt in facts.statements:
        node = stmt.node
        if not isinstance(node, (cst.Assign, cst.AnnAssign)) or node.value is None:
            continue
        for target, value in _pairs(node):
            key = dotted(target)
            if key is None or (key.count(".") > 1) or ("." in key and not key.startswith("self.")):
                continue
            call = strip_chain(value)
            if call is None:
                continue
            owner = _owner(facts, stmt, key)
            metric = _metric_of(facts, call, key, stmt, owner, custom, scoped)
            if metric is not None:
                table.objects.append(metric)
                scoped[(id(owner), key)] = metric
    if not table.objects:
        return table
    scoped = {(id(m.owner), m.key): m for m in table.objects}
    for call, stmt in facts.index.calls:
        _record_uses(facts, table, scoped, call, stmt)
    return table


def _pairs(node):
    """(target, value) pairs of `a = v`, `a = b = v` and `a, b = v1, v2`."""
    if isinstance(node, cst.AnnAssign):
        return [(node.target, node.value)]
    out = []
    for t in node.targets:
        target = t.target
        if isinstance(target, (cst.Tuple, cst.List)):
            if isinstance(node.value, (cst.Tuple, cst.List)) and len(node.value.elements) == len(target.elements):
                out.extend((el.value, v.value) for el, v in zip(target.elements, node.value.elements)
                           if not isinstance(el, cst.StarredElement))
        else:
            out.append((target, node.value))
    return out


def _metric_of(facts, call, key, stmt, owner, custom, scoped) -> Optional[MetricObject]:
    mc = method_call(call)
    if mc is not None and mc[1] == "clone":
        src_key = dotted(mc[0])
        src = resolve(facts, scoped, src_key, stmt) if src_key else None
        if src is not None:
            return MetricObject(key, call, stmt, src.cls, owner, source=src)
        return None
    qualified = facts.qualify(call.func) or ""
    short = last_part(qualified)
    if is_metric_class_name(qualified):
        return MetricObject(key, call, stmt, short, owner)
    if short in custom and qualified == short:
        return MetricObject(key, call, stmt, short, owner, custom=True)
    return None


def _owner(facts, stmt: Stmt, key: str) -> Optional[Stmt]:
    """Where a key lives: the class of the method for `self.x`, else the function (None:
    module level)."""
    function = facts.function_of(stmt)
    if key.startswith("self."):
        return function.class_stmt if function is not None else None
    return function.stmt if function is not None else None


def resolve(facts, scoped: dict, key: Optional[str], at: Stmt) -> Optional[MetricObject]:
    """The metric object a dotted name stands for at a statement, or None."""
    if key is None:
        return None
    function = facts.function_of(at)
    if key.startswith("self."):
        if function is None or function.class_stmt is None:
            return None
        for cls_stmt in _class_chain(facts, function.class_stmt):
            m = scoped.get((id(cls_stmt), key))
            if m is not None:
                return m
        return None
    if "." in key:
        return None
    if function is not None:
        m = scoped.get((id(function.stmt), key))
        if m is not None:
            return m
        if key in function.params or _stores_locally(facts, function, key):
            return None  # a parameter or another local value shadows the global
    return scoped.get((id(None), key))


def _stores_locally(facts, function, key: str) -> bool:
    return any(key in s.stores for s in facts.index.function_body(function.stmt))


def _class_chain(facts, cls_stmt: Stmt) -> list[Stmt]:
    """The class and its in-file base classes."""
    out, seen = [], set()
    todo = [cls_stmt]
    while todo and len(out) < 8:
        s = todo.pop(0)
        if id(s) in seen:
            continue
        seen.add(id(s))
        out.append(s)
        info = facts.classes.get(s.node.name.value)
        for base in (info.bases if info is not None else ()):
            inner = facts.classes.get(last_part(base))
            if inner is not None:
                todo.append(inner.stmt)
    return out


def _record_uses(facts, table: MetricTable, scoped: dict, call: cst.Call, stmt: Stmt) -> None:
    func = call.func
    key = dotted(func)
    if key is not None:
        m = resolve(facts, scoped, key, stmt)
        if m is not None:
            use = MetricUse(m, "forward", call, stmt)
            table.uses.append(use)
            table.by_call[id(call)] = use
            return
    mc = method_call(call)
    if mc is not None:
        m = resolve(facts, scoped, dotted(mc[0]), stmt)
        if m is not None:
            # MetricTracker.increment() starts a fresh copy: as good as a reset.
            kind = {"update": "update", "forward": "forward", "compute": "compute", "reset": "reset",
                    "increment": "reset"}.get(mc[1], "other")
            use = MetricUse(m, kind, call, stmt)
            table.uses.append(use)
            if kind in ("forward", "update", "compute"):
                table.by_call[id(call)] = use
            return
    callee = facts.qualify(func) or dotted(func) or ""
    for arg in call.args:
        m = resolve(facts, scoped, dotted(arg.value), stmt)
        if m is not None:
            kind = "other" if callee in _HARMLESS_CALLS else "passed"
            table.uses.append(MetricUse(m, kind, call, stmt))
    # A metric inside a list/dict argument (e.g. MetricCollection([self.acc])) escapes too.
    for arg in call.args:
        if isinstance(arg.value, (cst.List, cst.Tuple, cst.Dict)):
            for el in arg.value.elements:
                m = resolve(facts, scoped, dotted(el.value), stmt)
                if m is not None:
                    table.uses.append(MetricUse(m, "passed", call, stmt))


# What a metric averages ------------------------------------------------------------

def implicit_macro(call: cst.Call, short: str) -> bool:
    """A Multiclass*/Multilabel* stat-score metric (class or functional) built without
    `average=`: it averages per class (macro)."""
    if short not in MACRO_DEFAULT_CLASSES and short not in MACRO_DEFAULT_FUNCTIONS:
        return False
    if any(a.star for a in call.args) or keyword(call, "average") is not None:
        return False
    required = _REQUIRED_POSITIONAL.get(short, 1)
    if short in MACRO_DEFAULT_FUNCTIONS:
        required = 3 + (1 if "fbeta" in short else 0)  # preds, target, (beta,) num_classes
    positional = [a for a in call.args if a.keyword is None]
    return len(positional) <= required


def average_of(metric: MetricObject) -> Optional[str]:
    """The averaging of a stat-score metric: explicit literal, or the class default."""
    origin = metric.origin
    call = origin.call
    if any(a.star for a in call.args):
        return None
    kw = keyword(call, "average")
    if kw is not None:
        v = _literal(kw.value, origin)
        return "none" if v is None else (v if isinstance(v, str) else None)
    if origin.cls in MACRO_DEFAULT_CLASSES:
        return "macro" if implicit_macro(call, origin.cls) else None
    if origin.cls in TASK_WRAPPERS:
        return "micro"
    return None


def task_of(metric: MetricObject) -> Optional[str]:
    call = metric.origin.call
    if any(a.star for a in call.args):
        return None
    v = argument(call, 0, "task")
    if v is None:
        return "legacy"  # torchmetrics < 0.11: `Accuracy()` without a task
    lit = _literal(v, metric.origin)
    return lit if isinstance(lit, str) else None


def _literal(expr, metric):
    """A literal, or the literal default of a parameter of the function that builds the
    metric (`def __init__(self, average="macro")`: modules are mostly built with their
    defaults)."""
    value = literal_value(expr)
    stmt = getattr(metric, "stmt", None)
    if isinstance(expr, cst.Name) and stmt is not None and stmt.function is not None:
        params = stmt.function.node.params
        for p in (*params.posonly_params, *params.params, *params.kwonly_params):
            if p.name.value == expr.value and p.default is not None:
                return literal_value(p.default)
    return value


def epoch_mean_exact(metric: MetricObject, facts=None) -> Optional[bool]:
    """Is the batch-size-weighted mean of the batch values this metric returns equal to
    its value over the epoch? True (accuracy over samples, mean errors), False
    (per-class averages, F1, AUROC, ...), None (cannot tell)."""
    origin = metric.origin
    if origin.custom:
        return None
    if origin.is_collection:
        members = collection_members(origin, facts)
        if members is None:
            return None
        results = [epoch_mean_exact(m, facts) for m in members]
        if any(r is False for r in results):
            return False
        return True if results and all(r is True for r in results) else None
    cls = origin.cls
    if cls in _MEAN_OVER_SAMPLES:
        return True
    if cls in _SINGLE_LABEL_MICRO and _task_for(origin) == "multiclass" and average_of(origin) == "micro":
        return True  # micro precision/recall/F1 of single-label predictions is the accuracy
    if cls in _ACCURACY_CLASSES:
        if cls == "Accuracy":
            task = task_of(origin)
            if task is None:
                return None
            if task == "binary":
                return True
        avg = average_of(origin)
        if avg is None:
            return None
        return avg == "micro"
    return False


def _task_for(metric) -> Optional[str]:
    return "multiclass" if metric.cls.startswith("Multiclass") else task_of(metric)


def epoch_mean_exact_any(metric: MetricObject, facts) -> Optional[bool]:
    """`epoch_mean_exact` over every construction of the same name in the same class or
    function (`if binary: self.f1 = F1Score("binary") else: ...`): False when one of
    them does not decompose."""
    results = [epoch_mean_exact(m, facts) for m in facts.metrics.objects
               if m.key == metric.key and m.owner is metric.owner] or [epoch_mean_exact(metric, facts)]
    if any(r is False for r in results):
        return False
    return True if all(r is True for r in results) else None


@dataclass(eq=False)
class _Member:
    """A metric inside a MetricCollection's literal list or dict."""
    call: cst.Call
    cls: str
    source: None = None
    custom: bool = False

    @property
    def origin(self):
        return self

    @property
    def is_collection(self) -> bool:
        return self.cls == COLLECTION


def collection_members(collection: MetricObject, facts) -> Optional[list]:
    if facts is None:
        return None
    call = collection.call
    first = argument(call, 0, "metrics")
    if first is None:
        return None
    if isinstance(first, (cst.List, cst.Tuple)):
        values = [el.value for el in first.elements]
    elif isinstance(first, cst.Dict):
        values = [el.value for el in first.elements if isinstance(el, cst.DictElement)]
    else:
        values = [first, *(a.value for a in call.args[1:] if a.keyword is None)]
    out = []
    for v in values:
        inner = strip_chain(v)
        if inner is None:
            return None
        qualified = facts.qualify(inner.func) or ""
        if not is_metric_class_name(qualified):
            return None
        out.append(_Member(inner, last_part(qualified)))
    return out or None
