"""A model's raw output and what it is: logits for a sigmoid (trained with
`BCEWithLogitsLoss`), class scores (trained with `CrossEntropyLoss`/`NLLLoss`).

Minimal on purpose: the output is known only where a name is bound to a model call
(through reshapes that keep values), and its meaning only through the losses the
module applies to that model's outputs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from .exprs import method_call, last_part, value_assigned
from .flow import last_assignment_before

# Methods that change an output's shape or device, not its values.
_SAME_VALUES = {"squeeze", "view", "reshape", "flatten", "float", "double", "contiguous", "cpu",
                "detach", "to", "cuda", "unsqueeze", "view_as", "reshape_as", "clone", "numpy"}
_MULTICLASS = {"CrossEntropyLoss", "NLLLoss", "cross_entropy", "nll_loss", "MultiMarginLoss", "multi_margin_loss"}
_BINARY = {"BCEWithLogitsLoss", "binary_cross_entropy_with_logits", "BCELoss", "binary_cross_entropy",
           "MultiLabelSoftMarginLoss", "multilabel_soft_margin_loss"}


@dataclass(eq=False)
class Output:
    key: str                       # the model's dotted name
    call: cst.Call                 # the forward pass
    losses: list = field(default_factory=list)   # LossInfo of the losses fed this model's outputs

    @property
    def bce_logits(self) -> bool:
        """Trained with a sigmoid-inside loss only: the raw output is a logit."""
        shorts = {l.short for l in self.losses}
        return bool(shorts) and shorts <= {"BCEWithLogitsLoss", "binary_cross_entropy_with_logits"}

    @property
    def class_scores(self) -> bool:
        """Trained with a multi-class loss only: the raw output is (N, C) scores."""
        shorts = {l.short for l in self.losses}
        return bool(shorts) and shorts <= _MULTICLASS

    @property
    def scores(self) -> bool:
        """Trained with a classification loss: float scores, never class ids."""
        shorts = {l.short for l in self.losses}
        return bool(shorts) and shorts <= (_MULTICLASS | _BINARY)


def _forward_call(facts, expr, at, depth=0) -> Optional[tuple[str, cst.Call]]:
    for _ in range(6):
        mc = method_call(expr)
        if mc is not None and mc[1] in _SAME_VALUES:
            expr = mc[0]
            continue
        if isinstance(expr, cst.Attribute) and expr.attr.value == "data":
            expr = expr.value
            continue
        break
    if isinstance(expr, cst.Call):
        key = facts.model_key(expr)
        return (key, expr) if key is not None else None
    if isinstance(expr, cst.Name) and depth < 3:
        s = last_assignment_before(facts.index, expr.value, at)
        v = value_assigned(s.node, expr.value) if s is not None else None
        if v is not None:
            return _forward_call(facts, v, s, depth + 1)
    return None


def losses_by_model(facts) -> dict[str, list]:
    """Model key -> the losses applied to its outputs anywhere in the module."""
    out: dict[str, list] = {}
    for c in facts.loss_calls:
        if c.input is None:
            continue
        found = _forward_call(facts, c.input, c.stmt)
        if found is not None:
            out.setdefault(found[0], []).append(c.loss)
    return out


def model_output(facts, expr, at) -> Optional[Output]:
    found = _forward_call(facts, expr, at)
    if found is None:
        return None
    key, call = found
    return Output(key, call, list(facts.model_losses.get(key, [])))


def forward_applies(facts, output: Output, at, names: set[str]) -> Optional[bool]:
    """Does the model's own `forward` call one of `names` (e.g. sigmoid)? None when the
    model's class is not in the file."""
    binding = facts.model_binding_call(output.key, at) if "." not in output.key else None
    if binding is None:
        # Unknown class: if any in-file module's forward applies it, do not guess.
        for cls in facts.classes.values():
            forward = cls.methods.get("forward")
            if forward is not None and _calls_any(facts, forward.stmt, names):
                return True
        return None
    cls = facts.classes.get(last_part(facts.qualify(binding.func) or ""))
    if cls is None:
        return None
    forward = cls.methods.get("forward")
    return _calls_any(facts, forward.stmt, names) if forward is not None else None


def _calls_any(facts, stmt, names) -> bool:
    return any(last_part(facts.qualify(c.func) or "") in names or
               (isinstance(c.func, cst.Attribute) and c.func.attr.value in names)
               for c, _ in facts.calls_within(stmt))


_LABEL_NAME = re.compile(r"^(?:y|ys|labels?|targets?|gts?|y_true|y_batch|label_batch|target_batch)$"
                         r"|_(?:labels?|targets?)$|^(?:labels?|targets?)_")
_LABEL_PEEL = {"to", "cuda", "cpu", "long", "float", "view", "view_as", "squeeze", "reshape", "flatten", "int",
               "numpy", "detach"}


def is_label(facts, expr, loop) -> bool:
    """A batch's ground-truth labels: a loop target other than the inputs (`y` in
    `for x, y in loader`), `data.y`, or a name that says so (`labels`, `targets`)."""
    for _ in range(4):
        mc = method_call(expr)
        if mc is not None and mc[1] in _LABEL_PEEL:
            expr = mc[0]
            continue
        break
    if isinstance(expr, cst.Attribute) and expr.attr.value == "y":
        return True
    if isinstance(expr, cst.Subscript) and isinstance(expr.value, cst.Name) and loop is not None \
            and expr.value.value in loop.targets and len(expr.slice) == 1 \
            and isinstance(expr.slice[0].slice, cst.Index):
        key = expr.slice[0].slice.value
        return isinstance(key, cst.SimpleString) and _LABEL_NAME.search(key.evaluated_value or "") is not None
    if not isinstance(expr, cst.Name):
        return False
    if loop is not None and expr.value in loop.targets[1:] and len(loop.targets) >= 2 \
            and expr.value != loop.targets[0]:
        return bool(_LABEL_NAME.search(expr.value)) or expr.value == loop.targets[-1]
    return bool(_LABEL_NAME.search(expr.value))
