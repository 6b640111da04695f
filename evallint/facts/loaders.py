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
from . import flow
from .exprs import argument, keyword, last_part, literal_value, number
from .index import Stmt
from .scopes import argument_for

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


def loader_info(facts, name: str, at: Stmt, _depth: int = 0) -> Optional[LoaderInfo]:
    """The DataLoader bound to `name` where `at` runs (through in-file callers for a
    parameter); None when it cannot be told or callers disagree."""
    function = facts.function_of(at)
    if function is not None and name in function.params:
        if _depth > 2:
            return None
        infos = []
        for site in facts.call_sites(function):
            arg = argument_for(function, name, site.call)
            infos.append(loader_info(facts, arg.value, site.stmt, _depth + 1) if isinstance(arg, cst.Name) else None)
        if not infos or any(i is None for i in infos):
            return None
        keys = {(i.batch_size, i.drop_last, i.has_sampler, i.batches_len) for i in infos}
        return infos[0] if len(keys) == 1 else None
    c = facts.construction(name, at, kind="loader")
    if c is None and function is not None and not any(name in s.stores for s in flow.scope_statements(facts.index, at)):
        module_level = [x for x in facts.constructions if x.name == name and x.kind == "loader"
                        and x.stmt.function is None]
        c = module_level[0] if len(module_level) == 1 else None  # a global built after the def
    if c is None:
        return None
    return describe(c, lambda n: flow.assigned_value(facts.index, n, c.stmt))
