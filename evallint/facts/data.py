"""Datasets and data loaders built in the module."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import libcst as cst

from .exprs import argument, dotted, literal_value, NOT_LITERAL, simple_assignment
from .index import Stmt

LOADERS = {"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader",
           "torch_geometric.loader.DataLoader", "DataLoader"}
TENSOR_DATASETS = {"torch.utils.data.TensorDataset", "TensorDataset"}
DATASET_BASES = {"torch.utils.data.Dataset", "torch.utils.data.dataset.Dataset", "Dataset",
                 "torch.utils.data.IterableDataset", "IterableDataset"}


@dataclass(eq=False)
class Construction:
    """`name = Callee(args)` where Callee builds a dataset or a loader."""

    name: str
    call: cst.Call
    callee: str          # qualified callee name
    stmt: Stmt
    kind: str            # "loader" | "torchvision" | "tensor_dataset" | "custom_dataset"

    def dataset_expr(self) -> Optional[cst.BaseExpression]:
        return argument(self.call, 0, "dataset") if self.kind == "loader" else None

    def batch_size(self) -> Optional[int]:
        """The loader's batch size when it is a literal (DataLoader's default is 1)."""
        if self.kind != "loader":
            return None
        expr = argument(self.call, 1, "batch_size")
        if expr is None:
            return 1
        v = literal_value(expr)
        return int(v) if isinstance(v, float) and v == int(v) else None


def is_torchvision_dataset(callee: str) -> bool:
    return callee.startswith("torchvision.datasets.") and callee.rsplit(".", 1)[-1][:1].isupper()


def collect_constructions(statements, qualify, custom_dataset_classes: set[str]) -> list[Construction]:
    out = []
    for stmt in statements:
        pair = simple_assignment(stmt.node) or _attribute_assignment(stmt.node)
        if pair is None or not isinstance(pair[1], cst.Call):
            continue
        name, call = pair
        callee = qualify(call.func) or ""
        if callee in LOADERS or callee.endswith(".DataLoader"):
            kind = "loader"
        elif is_torchvision_dataset(callee):
            kind = "torchvision"
        elif callee in TENSOR_DATASETS:
            kind = "tensor_dataset"
        elif callee in custom_dataset_classes:
            kind = "custom_dataset"
        else:
            continue
        out.append(Construction(name, call, callee, stmt, kind))
    return out


def _attribute_assignment(node):
    """`self.test_set = MNIST(...)` -> ("self.test_set", call): a LightningDataModule's
    `setup` keeps its datasets on attributes."""
    if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Attribute):
        name = dotted(node.targets[0].target)
        if name is not None:
            return name, node.value
    return None


def literal_args_key(call: cst.Call):
    """A hashable description of a call's arguments if all are literals, else None."""
    key = []
    for arg in call.args:
        v = literal_value(arg.value)
        if v is NOT_LITERAL:
            return None
        key.append((arg.keyword.value if arg.keyword else None, v))
    return tuple(key)
