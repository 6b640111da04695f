"""What a data loader yields: its batch size, whether it drops the short last batch,
whether `len()` of it counts batches.

A loader is resolved from a `DataLoader(...)` construction bound to its name, through
the in-file callers when it is a function parameter. Unknown stays None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import libcst as cst

from .data import Construction
from .exprs import argument, keyword, last_part, literal_value, number

# Loaders whose `len()` is the number of batches and whose batches hold `batch_size`
# samples (graphs, for torch_geometric), the last one shorter unless drop_last.
BATCHING_LOADERS = frozenset({
    "torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader",
    "torch_geometric.loader.DataLoader", "torch_geometric.data.DataLoader",
    "torch_geometric.loader.DenseDataLoader", "torch_geometric.data.DenseDataLoader",
    "dgl.dataloading.GraphDataLoader",
})


@dataclass(eq=False)
class LoaderInfo:
    construction: Construction
    batch_size: Optional[int]      # None: not a known literal (or a batch_sampler decides)
    drop_last: Optional[bool]      # None: not a literal
    has_sampler: bool              # sampler= or batch_sampler= given
    batches_len: bool              # len(loader) is its number of batches

    @property
    def call(self) -> cst.Call:
        return self.construction.call

    @property
    def is_graph(self) -> bool:
        return self.construction.callee.startswith(("torch_geometric.", "dgl."))


def _int_of(expr, resolve) -> Optional[int]:
    v = number(expr)
    if v is None and isinstance(expr, cst.Name):
        bound = resolve(expr.value)
        v = number(bound) if bound is not None else None
    return int(v) if v is not None and v == int(v) and v > 0 else None


def describe(construction: Construction, resolve) -> LoaderInfo:
    """`resolve(name)` gives the value a plain name is bound to where the loader is built."""
    call = construction.call
    callee = construction.callee
    known = callee in BATCHING_LOADERS or (callee.endswith(".DataLoader") and callee.startswith("torch"))
    if callee == "DataLoader":  # not imported in this file: assume torch's
        known = True
    graph = callee.startswith("torch_geometric.")
    # torch's positional order: dataset, batch_size, shuffle, sampler, batch_sampler, ...
    batch_sampler = (keyword(call, "batch_sampler") if graph else argument(call, 4, "batch_sampler")) is not None
    starred = any(a.star for a in call.args)
    size_expr = argument(call, 1, "batch_size")
    if batch_sampler or starred:
        batch_size = None
    elif size_expr is None:
        batch_size = 1
    else:
        batch_size = _int_of(size_expr, resolve)
    drop_arg = keyword(call, "drop_last") if graph else argument(call, 8, "drop_last")
    drop = drop_arg.value if isinstance(drop_arg, cst.Arg) else drop_arg
    if drop is None:
        drop_last: Optional[bool] = None if starred else False
    else:
        v = literal_value(drop)
        drop_last = v if isinstance(v, bool) else None
    has_sampler = batch_sampler or (keyword(call, "sampler") if graph else argument(call, 3, "sampler")) is not None
    return LoaderInfo(construction, batch_size, drop_last, has_sampler, known and not batch_sampler)


def is_loader_name(name: str) -> bool:
    return last_part(name).lower().endswith(("loader", "dl", "dataloader"))
