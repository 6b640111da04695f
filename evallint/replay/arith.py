"""Replay of the metric-arithmetic findings: which value is the finding's own, and the
region reduced to what that value needs.

- `own_label`: the value a finding points at inside its statement (one element of
  `return loss / n, correct / m`, one field of a print) chosen by the finding's column.
- `slice_loop`: the evaluation loop cut down to the statements the metric depends on,
  so that another bug in the same loop (a crash two lines below) does not hide it.
- `instrument_predictions`: predictions that are a tensor, not a number, are scored
  against the batch's labels, so that a wrong threshold shows as a wrong accuracy.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import libcst as cst

from ..facts.exprs import target_names
from .names import expr_reads
from .tree import code_of, smalls

HITS, SEEN = "__evallint_hits__", "__evallint_seen__"
PREDICTION_LABEL = "accuracy of `{}` against the labels"


def candidate_labels(stmt: cst.BaseStatement) -> list[str]:
    """The values a statement reports, as the region's sinks label them."""
    from .region import _reported_exprs  # the print/log field reader the cutter uses

    out: list[str] = []
    for small in smalls(stmt):
        if isinstance(small, cst.Return) and small.value is not None:
            value = small.value
            elements = value.elements if isinstance(value, cst.Tuple) else [value]
            out += [code_of(el.value if isinstance(el, cst.Element) else el) for el in elements]
        elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            out += _reported_exprs(small.value)
        elif isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign)) and small.value is not None:
            out.append(code_of(small.value))
    return out


def own_label(stmt: cst.BaseStatement, line_text: str, column: Optional[int]) -> Optional[str]:
    """The reported value whose text holds the finding's column (1-based), the
    narrowest one; None when the column points at none of them (an assignment's
    right-hand side: the assigned name is then the value, as before)."""
    if column is None:
        return None
    at = column - 1
    best: Optional[str] = None
    for label in candidate_labels(stmt):
        start = line_text.find(label)
        while start != -1:
            if start <= at < start + len(label) and (best is None or len(label) < len(best)):
                best = label
            start = line_text.find(label, start + 1)
    return best


def _assigned(stmt: cst.BaseStatement) -> set[str]:
    names: set[str] = set()
    for small in smalls(stmt):
        if isinstance(small, cst.Assign):
            for t in small.targets:
                names |= set(target_names(t.target))
        elif isinstance(small, (cst.AugAssign, cst.AnnAssign)) and isinstance(small.target, cst.Name):
            names.add(small.target.value)
    return names


def _reads(stmt: cst.BaseStatement) -> set[str]:
    out: set[str] = set()
    for small in smalls(stmt):
        for child in small.children:
            if isinstance(child, cst.BaseExpression):
                out |= set(expr_reads(child))
        if isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name):
            out.add(small.target.value)
    return out


class _LoopSlicer(cst.CSTTransformer):
    """In the first `for` loop's body, the simple statements that (transitively) define
    what `wanted` needs run as they are; compound statements and calls that may change
    state too. The others run tolerantly (see `_tolerant`)."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = set(wanted)
        self.done = False

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        if self.done or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        self.done = True
        body = list(updated.body.body)
        needed = set(self.wanted)
        keep = [False] * len(body)
        changed = True
        while changed:  # loop-carried values: iterate to a fixed point
            changed = False
            for i, stmt in enumerate(body):
                if keep[i]:
                    continue
                simple = isinstance(stmt, cst.SimpleStatementLine)
                if not simple or _assigned(stmt) & needed or not _assigned(stmt) and not _is_plain_expr(stmt):
                    keep[i] = True
                    changed = True
                    if simple:
                        needed |= _reads(stmt)
                    else:
                        needed |= _compound_reads(stmt)
        if all(keep):
            return updated
        new = [s if k else _tolerant(s) for s, k in zip(body, keep)]
        return updated.with_changes(body=updated.body.with_changes(body=new))


def _tolerant(stmt: cst.BaseStatement) -> cst.BaseStatement:
    """`try: stmt / except Exception: pass`: a statement the metric does not need runs,
    but its failure (another bug's crash) does not stop the loop."""
    return cst.Try(body=cst.IndentedBlock(body=[stmt]),
                   handlers=[cst.ExceptHandler(body=cst.IndentedBlock(body=[cst.SimpleStatementLine([cst.Pass()])]),
                                               type=cst.Name("Exception"))])


def _is_plain_expr(stmt: cst.BaseStatement) -> bool:
    """A statement that assigns nothing: a print, a log call, `optimizer.step()`. Only
    reporting calls may go; other calls may change state and are kept."""
    for small in smalls(stmt):
        if not (isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)):
            return False
        func = small.value.func
        name = func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else ""
        if name not in ("print", "log", "info", "debug", "write", "set_postfix", "add_scalar", "set_description"):
            return False
    return True


def _compound_reads(stmt: cst.BaseStatement) -> set[str]:
    out: set[str] = set()

    class _Names(cst.CSTVisitor):
        def visit_Name(self, node: cst.Name) -> None:
            out.add(node.value)

    stmt.visit(_Names())
    return out


def slice_loop(region, deps: frozenset[str]):
    """The region whose evaluation loop runs what `deps` do not need tolerantly (a new
    Region), or the region itself when all is needed or the code does not parse."""
    try:
        module = cst.parse_module(region.code)
    except cst.ParserSyntaxError:
        return region
    slicer = _LoopSlicer(set(deps))
    sliced = module.visit(slicer)
    if sliced.code == region.code:
        return region
    return replace(region, code=sliced.code)


class _Instrument(cst.CSTTransformer):
    """After `preds = ...` inside the loop, count how many predictions equal the labels."""

    def __init__(self, name: str, labels: str) -> None:
        self.name, self.labels = name, labels
        self.done = False
        self.depth = 0

    def visit_For(self, node) -> None:
        self.depth += 1

    def leave_For(self, original, updated):
        self.depth -= 1
        return updated

    def leave_SimpleStatementLine(self, original, updated):
        if self.done or not self.depth or not _plainly_assigns(updated, self.name):
            return updated
        self.done = True
        count = cst.parse_statement(
            f"{HITS} += int(({self.name}.reshape(-1) == {self.labels}.reshape(-1)).sum()); "
            f"{SEEN} += {self.labels}.reshape(-1).shape[0]\n")
        return cst.FlattenSentinel([updated, count])


def _plainly_assigns(stmt: cst.BaseStatement, name: str) -> bool:
    """`name = ...` (not `name += ...`: an accumulated count is a number already)."""
    return any(isinstance(small, cst.Assign) and name in set().union(*(target_names(t.target) for t in small.targets))
               for small in smalls(stmt))


def _loop_labels(module: cst.Module) -> Optional[str]:
    """The label name of the first loop over `(inputs, labels)` batches."""
    for node in module.body:
        loop = node
        while isinstance(loop, cst.With) and isinstance(loop.body, cst.IndentedBlock):
            loop = next((s for s in loop.body.body if isinstance(s, (cst.For, cst.With))), None)
        if isinstance(loop, cst.For):
            target = loop.target
            if isinstance(loop.iter, cst.Call) and isinstance(target, cst.Tuple) and len(target.elements) == 2 \
                    and isinstance(target.elements[1].value, (cst.Tuple, cst.List)):
                target = target.elements[1].value  # enumerate(loader)
            if isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) >= 2 \
                    and isinstance(target.elements[1].value, cst.Name):
                return target.elements[1].value.value
            return None
    return None


def instrument_predictions(region):
    """For a region whose metric is a name assigned in its loop (`preds = (out > 0.5)`),
    add the accuracy those predictions give against the batch's labels, as one more
    value to judge when the name itself is not a number. The region itself when the
    loop does not unpack labels."""
    metric = region.metric
    if metric is None or metric.expr != metric.label or not metric.label.isidentifier():
        return region
    try:
        module = cst.parse_module(region.code)
    except cst.ParserSyntaxError:
        return region
    labels = _loop_labels(module)
    if labels is None or labels == metric.label:
        return region
    tool = _Instrument(metric.label, labels)
    body = module.visit(tool)
    if not tool.done:
        return region
    init = cst.parse_statement(f"{HITS} = 0; {SEEN} = 0\n")
    code = body.with_changes(body=[init, *body.body]).code
    from .region import Sink

    label = PREDICTION_LABEL.format(metric.label)
    sink = Sink(label, f"{HITS} / max({SEEN}, 1)", frozenset({metric.label}), f"{label} / accuracy")
    return replace(region, code=code, sinks=(*region.sinks, sink))
