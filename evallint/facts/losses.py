"""Loss objects and loss calls: which loss a script uses, its reduction, and what it
is applied to.

Three spellings are recognised: a bound loss object (`criterion = nn.CrossEntropyLoss()`,
`self.loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")`), a functional loss
(`F.cross_entropy(out, y)`) and an inline object (`nn.MSELoss()(out, y)`). Only
PyTorch's own losses are described: a custom loss is unknown, and rules stay quiet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import libcst as cst

from .exprs import argument, dotted, keyword, last_part, literal_value, strip_method_chain
from .index import Stmt
from .scopes import argument_for

_NN = "torch.nn."
_FUNCTIONAL = "torch.nn.functional."
# torch.nn.functional losses (all take `input, target` first and default to "mean").
FUNCTIONAL_LOSSES = frozenset({
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "poisson_nll_loss",
    "gaussian_nll_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
    "multilabel_margin_loss", "multi_margin_loss", "hinge_embedding_loss",
    "cosine_embedding_loss", "margin_ranking_loss", "triplet_margin_loss", "ctc_loss",
})
# torch.nn loss classes; the value is where `reduction` sits among positional
# constructor arguments (after the deprecated size_average/reduce).
LOSS_CLASSES = {
    "CrossEntropyLoss": 4, "NLLLoss": 4, "BCELoss": 3, "BCEWithLogitsLoss": 3, "MSELoss": 2,
    "L1Loss": 2, "SmoothL1Loss": 2, "HuberLoss": 0, "KLDivLoss": 2, "PoissonNLLLoss": 5,
    "GaussianNLLLoss": 99, "SoftMarginLoss": 2, "MultiLabelSoftMarginLoss": 3,
    "MultiLabelMarginLoss": 2, "MultiMarginLoss": 5, "HingeEmbeddingLoss": 3,
    "CosineEmbeddingLoss": 3, "MarginRankingLoss": 3, "TripletMarginLoss": 6, "CTCLoss": 1,
}
_WEIGHT_FIRST = {"CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "MultiLabelSoftMarginLoss"}
_DEVICE_METHODS = {"to", "cuda", "cpu", "float", "double", "half"}


@dataclass(eq=False)
class LossInfo:
    """One loss: a bound object, an inline object, or a functional loss call."""

    name: Optional[str]          # the bound dotted name; None for functional/inline use
    cls: str                     # "torch.nn.CrossEntropyLoss", "torch.nn.functional.cross_entropy"
    reduction: Optional[str]     # "mean" | "sum" | "none"; None when it cannot be told
    functional: bool
    stmt: Stmt
    call: cst.Call               # the constructor call, or the functional call itself

    @property
    def short(self) -> str:
        """`CrossEntropyLoss`, `cross_entropy`."""
        return last_part(self.cls)

    @property
    def with_logits(self) -> bool:
        """Does the loss apply a sigmoid itself (so the model's outputs are logits)?"""
        return self.short in ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits")

    @property
    def applies_log_softmax(self) -> bool:
        return self.short in ("CrossEntropyLoss", "cross_entropy")


@dataclass(eq=False)
class LossCall:
    """`criterion(out, y)`, `F.cross_entropy(out, y)`, `nn.CrossEntropyLoss()(out, y)`."""

    loss: LossInfo
    call: cst.Call
    input: Optional[cst.BaseExpression]
    target: Optional[cst.BaseExpression]
    stmt: Stmt


def loss_class(callee: str) -> Optional[str]:
    """The qualified name of a PyTorch loss class or functional loss, else None."""
    if callee.startswith("nn."):
        callee = "torch." + callee
    if callee.startswith(("F.", "functional.")):
        callee = _FUNCTIONAL + callee.split(".", 1)[1]
    if callee.startswith(_FUNCTIONAL) and callee[len(_FUNCTIONAL):] in FUNCTIONAL_LOSSES:
        return callee
    if callee.startswith(_NN) and callee[len(_NN):] in LOSS_CLASSES:
        return callee
    if callee.startswith("torch.nn.modules.") and last_part(callee) in LOSS_CLASSES:
        return _NN + last_part(callee)
    return None


def reduction_of(call: cst.Call, cls: str) -> Optional[str]:
    """The reduction a loss constructor or functional call asks for (default "mean")."""
    arg = keyword(call, "reduction")
    if arg is not None:
        v = literal_value(arg.value)
        if v == "batchmean":
            return "mean"
        return v if v in ("mean", "sum", "none") else None
    legacy = {k: literal_value(keyword(call, k).value) for k in ("size_average", "reduce") if keyword(call, k)}
    if legacy:
        if legacy.get("reduce") is False:
            return "none"
        if legacy.get("size_average") is False:
            return "sum"
        return "mean" if all(v is True or v is None for v in legacy.values()) else None
    if any(a.star for a in call.args):
        return None
    positional = [a for a in call.args if a.keyword is None]
    if not positional:
        return "mean"
    if cls.startswith(_FUNCTIONAL):
        return "mean" if len(positional) <= 2 else None  # input, target
    index = LOSS_CLASSES.get(last_part(cls))
    if index is not None and len(positional) > index:
        v = literal_value(positional[index].value)
        return v if v in ("mean", "sum", "none") else None
    # One positional argument is the class weights for these; anything else is a
    # deprecated flag or a reduction we do not try to read.
    return "mean" if len(positional) == 1 and last_part(cls) in _WEIGHT_FIRST else None


def _constructor(expr) -> Optional[cst.Call]:
    """`nn.CrossEntropyLoss().to(device)` -> the constructor call."""
    return strip_method_chain(expr, _DEVICE_METHODS)


def collect_losses(statements, qualify) -> list[LossInfo]:
    """Bound loss objects: `name = <loss class>(...)` (also `self.name = ...`)."""
    out = []
    for stmt in statements:
        node = stmt.node
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            target, value = node.targets[0].target, node.value
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        name = dotted(target)
        call = _constructor(value)
        if name is None or call is None:
            continue
        cls = loss_class(qualify(call.func) or "")
        if cls is None or cls.startswith(_FUNCTIONAL):
            continue
        out.append(LossInfo(name, cls, reduction_of(call, cls), False, stmt, call))
    return out


def collect_loss_calls(calls, qualify, lookup: Callable[[str, Stmt], Optional[LossInfo]]) -> list[LossCall]:
    """Every application of a loss. `lookup(name, stmt)` resolves a bound name."""
    out = []
    for call, stmt in calls:
        func = call.func
        loss = None
        if isinstance(func, cst.Call):  # nn.CrossEntropyLoss()(out, y)
            cls = loss_class(qualify(func.func) or "")
            if cls is not None and not cls.startswith(_FUNCTIONAL):
                loss = LossInfo(None, cls, reduction_of(func, cls), False, stmt, func)
        else:
            cls = loss_class(qualify(func) or "")
            if cls is not None and cls.startswith(_FUNCTIONAL):
                loss = LossInfo(None, cls, reduction_of(call, cls), True, stmt, call)
            elif cls is None:
                name = dotted(func)
                if isinstance(func, cst.Attribute) and func.attr.value == "forward":
                    name = dotted(func.value)
                if name is not None:
                    loss = lookup(name, stmt)
        if loss is None:
            continue
        out.append(LossCall(loss, call, argument(call, 0, "input"), argument(call, 1, "target"), stmt))
    return out


def loss_named(facts, name: str, at: Stmt, _depth: int = 0) -> Optional[LossInfo]:
    """The loss object bound to `name` where `at` runs: the last binding before it
    (any binding of `self.x` in the class), or, for a parameter, the loss every
    in-file caller passes."""
    found = facts._bound_losses_by_name.get(name, [])
    if name.startswith("self."):
        same = {l.cls for l in found}
        return found[-1] if len(same) == 1 and len({l.reduction for l in found}) == 1 else None
    before = [l for l in found if l.stmt.order < at.order and l.stmt.function is at.function]
    if before:
        return before[-1]
    function = facts.function_of(at)
    if function is not None and name in function.params:
        if _depth > 2:
            return None
        results = []
        for site in facts.call_sites(function):
            arg = argument_for(function, name, site.call)
            results.append(loss_named(facts, arg.value, site.stmt, _depth + 1)
                           if isinstance(arg, cst.Name) else None)
        if results and all(r is not None for r in results) \
                and len({(r.cls, r.reduction) for r in results}) == 1:
            return results[0]
        return None
    module_level = [l for l in found if l.stmt.function is None]
    return module_level[-1] if len(module_level) == 1 or (module_level and at.function is None) else None
