"""What a number in a metric formula counts: samples, batches, or a rescaling.

`correct / (len(y) * 100)` divides by a sample count; `/ (len(loader) * 100)` by a
number of batches (another bug, with another size); `mae / (n * 100)` may undo a
×100 scaling of the labels (no bug at all). Rules ask here before they claim one.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

import libcst as cst

from .exprs import dotted, last_part, number
from .walk import walk

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts

_BATCH_COUNT_NAME = re.compile(
    r"^(?:n|num|number_of|count|total|nb)_?(?:batches|batch|steps|iters|iterations|minibatches)$"
    r"|^(?:batches|steps|iters|iterations|batch_idx|batch_index|batch_i|step|step_idx|it|i|j|idx|b)$"
    r"|^(?:batch|step)_?(?:count|num|total)$")
_LABEL_NAME = re.compile(r"(?:^|_)(?:y|ys|yy|target|targets|label|labels|gt|truth|price|prices)"
                         r"(?:_|$)|^y")


def is_batch_count(facts: "ModuleFacts", expr: cst.BaseExpression) -> bool:
    """`len(test_loader)`, `num_batches`, `batch_idx + 1`: a number of batches."""
    node = expr
    while isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add) \
            and number(node.right) == 1.0:
        node = node.left  # `batch_idx + 1`
    if isinstance(node, cst.Call) and dotted(node.func) == "len" and len(node.args) == 1:
        inner = node.args[0].value
        name = dotted(inner)
        if name is None or name.endswith(".dataset"):
            return False
        base = last_part(name)
        return facts.construction(base, kind="loader") is not None or facts.patterns.is_loader(base)
    name = dotted(node)
    if name is not None:
        from .patterns import snake
        return bool(_BATCH_COUNT_NAME.match(snake(last_part(name))))
    return False


def labels_scaled_by_hundred(facts: "ModuleFacts") -> bool:
    """Does the module multiply labels by 100 (`y = y * 100`, `targets *= 100`)?"""
    for stmt in facts.statements:
        node = stmt.node
        targets, value = [], None
        if isinstance(node, cst.Assign):
            targets, value = [t.target for t in node.targets], node.value
            scaled = any(isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Multiply)
                         and 100.0 in (number(n.left), number(n.right)) for n in walk(value))
        elif isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.MultiplyAssign):
            targets, scaled = [node.target], number(node.value) == 100.0
        else:
            continue
        if scaled and any(_LABEL_NAME.search(last_part(dotted(t) or "").lower()) for t in targets):
            return True
    return False
