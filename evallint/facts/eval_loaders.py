"""Evaluation data loaders: `drop_last` and distributed samplers.

A loader is evaluation data when it is bound to a validation/test name, when its
dataset is, when its dataset was built with `train=False`, or when it is built in a
branch on an evaluation split (`if flag == "test":`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from .data import LOADERS
from .exprs import argument, dotted, keyword, last_part, literal_value
from .patterns import snake
from .walk import walk

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts
    from .index import Stmt

SAMPLERS = {"torch.utils.data.DistributedSampler", "torch.utils.data.distributed.DistributedSampler"}
_EVAL_WORDS = {"val", "valid", "validation", "test", "testing", "eval", "evaluation", "dev"}


@dataclass(eq=False)
class DropLast:
    loader: cst.Call
    value: cst.BaseExpression      # the `True` that drops the last batch
    why: str


def _is_loader(facts, call: cst.Call) -> bool:
    name = facts.qualify(call.func) or ""
    return name in LOADERS or name.endswith(".DataLoader")


def _is_eval(facts, name: Optional[str]) -> bool:
    if not name:
        return False
    base = last_part(name)
    return facts.patterns.is_eval_data(base) and not facts.patterns.is_train_data(base)


def _binding(stmt: "Stmt", call: cst.Call) -> Optional[str]:
    node = stmt.node
    if isinstance(node, (cst.Assign, cst.AnnAssign, cst.Return)) and node.value is call:
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            return dotted(node.targets[0].target)
        if isinstance(node, cst.AnnAssign):
            return dotted(node.target)
    # `{"test": DataLoader(...)}`: the key names the split
    for n in walk(node):
        if isinstance(n, cst.DictElement) and n.value is call and isinstance(n.key, cst.SimpleString):
            return n.key.evaluated_value
    return None


def loader_role(facts: "ModuleFacts", call: cst.Call, stmt: "Stmt") -> Optional[str]:
    """Why a loader (or sampler) call serves evaluation data, or None."""
    bound = _binding(stmt, call)
    if _is_eval(facts, bound):
        return f"`{bound}`"
    data = argument(call, 0, "dataset")
    name = dotted(data) if data is not None else None
    if _is_eval(facts, name):
        return f"its dataset `{name}`"
    if isinstance(data, cst.Name):
        c = facts.construction(data.value, stmt)
        if c is not None and c.kind == "torchvision":
            tr = keyword(c.call, "train")
            if tr is not None and literal_value(tr.value) is False:
                return f"`{name}` (train=False)"
    if isinstance(data, cst.Call):
        tr = keyword(data, "train")
        if tr is not None and literal_value(tr.value) is False:
            return "its dataset (train=False)"
    return None


def _eval_branch(stmt: "Stmt") -> Optional[str]:
    """`if flag == "test":` around a statement -> "test"."""
    child = stmt
    for a in stmt.ancestors():
        if isinstance(a.node, cst.If) and child in a.blocks.get("body", []):
            test = a.node.test
            if isinstance(test, cst.Comparison) and len(test.comparisons) == 1 \
                    and isinstance(test.comparisons[0].operator, (cst.Equal, cst.In)):
                for side in (test.left, test.comparisons[0].comparator):
                    for n in walk(side):
                        if isinstance(n, cst.SimpleString) and isinstance(n.evaluated_value, str) \
                                and snake(n.evaluated_value) in _EVAL_WORDS:
                            return n.evaluated_value
        if a.is_function:
            return None
        child = a
    return None


def eval_drop_last(facts: "ModuleFacts") -> list[DropLast]:
    from . import flow
    out = []
    for call, stmt in facts.index.calls:
        if not _is_loader(facts, call):
            continue
        arg = keyword(call, "drop_last")
        if arg is None:
            continue
        bs = argument(call, 1, "batch_size")
        if bs is not None and literal_value(bs) == 1:
            continue
        if literal_value(arg.value) is True:
            role = loader_role(facts, call, stmt)
            if role is None and _eval_branch(stmt):
                role = f"the `{_eval_branch(stmt)}` branch"
            if role is not None:
                out.append(DropLast(call, arg.value, role))
        elif isinstance(arg.value, cst.Name):
            for s in flow.scope_statements(facts.index, stmt):
                if s.order >= stmt.order:
                    break
                node = s.node
                if isinstance(node, cst.Assign) and len(node.targets) == 1 \
                        and isinstance(node.targets[0].target, cst.Name) \
                        and node.targets[0].target.value == arg.value.value and literal_value(node.value) is True:
                    split = _eval_branch(s)
                    if split is not None:
                        out.append(DropLast(call, node.value, f"the `{split}` branch"))
    return out


@dataclass(eq=False)
class PaddedSampler:
    call: cst.Call
    why: str


def eval_distributed_samplers(facts: "ModuleFacts") -> list[PaddedSampler]:
    if _handles_padding(facts):
        return []
    out = []
    for call, stmt in facts.index.calls:
        name = facts.qualify(call.func) or ""
        if name not in SAMPLERS and not (name == "DistributedSampler" and "DistributedSampler" not in facts.classes):
            continue
        dl = keyword(call, "drop_last")
        if dl is not None and literal_value(dl.value) is True:
            continue
        role = loader_role(facts, call, stmt)
        if role is None:
            # `DataLoader(val_set, sampler=DistributedSampler(val_set))`
            for outer, s in facts.index.calls:
                if s is stmt and outer is not call and _is_loader(facts, outer) \
                        and any(a.value is call for a in outer.args):
                    role = loader_role(facts, outer, s)
        if role is not None:
            out.append(PaddedSampler(call, role))
    return out


def _handles_padding(facts) -> bool:
    """`gather_for_metrics` drops the duplicates; an all-gather followed by a slice to
    the data set's length truncates them."""
    gathers = False
    for call, _ in facts.index.calls:
        short = last_part(dotted(call.func) or "")
        if short == "gather_for_metrics":
            return True
        if short in ("all_gather", "all_gather_object", "gather", "all_gather_into_tensor"):
            gathers = True
    if not gathers:
        return False
    for stmt in facts.statements:
        for n in walk(stmt.node) if stmt.line_node is not None else ():
            if isinstance(n, cst.Slice) and n.upper is not None:
                return True
    return False
