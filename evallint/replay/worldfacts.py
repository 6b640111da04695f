"""What the skipped set-up tells the stand-ins, read from the whole module's facts
(the region alone does not hold the loss's construction), and the arithmetic
regions' preparation (see `arith`)."""
from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from typing import Optional

from .arith import instrument_predictions, slice_loop


@lru_cache(maxsize=4)
def _tree(text: str):
    from .tree import RegionError, Tree

    try:
        return Tree.parse(text)
    except (RegionError, RecursionError):
        return None


@lru_cache(maxsize=8)
def _bound_reductions(text: str) -> frozenset[str]:
    """The reductions of the module's bound PyTorch loss objects (`criterion =
    nn.NLLLoss(reduction="sum")`); "?" for one that cannot be told."""
    tree = _tree(text)
    if tree is None:
        return frozenset()
    return frozenset(l.reduction or "?" for l in tree.facts.losses if not l.functional and l.name is not None)


def _loader_batch_sizes(text: str, line: Optional[int], names: list[str]) -> set[int]:
    """The literal batch sizes of the loaders the region iterates, where the module
    builds them (`DataLoader(ds, batch_size=100)`, through in-file callers too)."""
    tree = _tree(text)
    at = tree.at_line(line) if tree is not None and line else None
    if at is None:
        return set()
    sizes = set()
    for name in names:
        info = tree.facts.loader_info(name, at)
        if info is None or info.batch_size is None or info.has_sampler:
            return set()
        sizes.add(info.batch_size)
    return sizes


def world_with_losses(world, source, roles: dict):
    """The stand-in criterion reduces the way the user's loss object does: a summed
    loss divided by the number of samples is then right, as in the user's code. Only
    when every bound loss of the module agrees on "sum"."""
    if "criterion" not in roles.values():
        return world
    reductions = _bound_reductions(getattr(source, "text", "") or "")
    if reductions == frozenset({"sum"}):
        return replace(world, loss_reduction="sum")
    return world


_BATCH_LITERAL = re.compile(r"^(batch_size|bs|BATCH_SIZE|eval_batch_size|test_batch_size|mini_batch_size)"
                            r"\s*=\s*(\d+)\s*$", re.M)


def world_with_batch_size(world, code: str, source=None, roles: Optional[dict] = None,
                          line: Optional[int] = None):
    """A region that keeps the script's `batch_size = 128` counts with it, or reads a
    batch-size name whose only literal in the file is a default (`mini_batch_size=100`):
    the stand-ins then batch the same way. With a loader, the sample count keeps a
    short last batch; loops by index keep the sample count (their code may assume whole
    batches)."""
    sizes = {int(m.group(2)) for m in _BATCH_LITERAL.finditer(code)}
    names = [n for n, r in (roles or {}).items() if r == "batch_size"]
    if not sizes and len(names) == 1 and source is not None:
        sizes = {int(v) for v in re.findall(rf"(?<![\w.]){re.escape(names[0])}\s*=\s*(\d+)\b",
                                            getattr(source, "text", "") or "")}
    loaders = [n for n, r in (roles or {}).items() if r == "loader"]
    if not sizes and loaders and source is not None:
        sizes = _loader_batch_sizes(getattr(source, "text", "") or "", line, loaders)
    if len(sizes) != 1:
        return world
    size = sizes.pop()
    if not 1 < size < world.n:
        return world
    if "loader" not in (roles or {}).values():
        return replace(world, batch_size=size)  # loops by index: the user's code sets n
    n = world.n if world.n % size else world.n + size // 2  # keep a short last batch
    return replace(world, batch_size=size, n=n)


def world_with_batches(world, code: str):
    """Record batches (`for data in loader: data.x`) where the region reads fields."""
    from .records import record_batches

    return replace(world, batches="record") if record_batches(code) else world


def world_from_setup(world, code: str, source, roles: dict, line: Optional[int]):
    """The region's world adjusted to what the script's set-up says (loss reduction,
    batch size, record batches)."""
    world = world_with_losses(world, source, roles)
    world = world_with_batch_size(world, code, source, roles, line)
    return world_with_batches(world, code)


def arith_regions(region: Optional[object]):
    """The region reduced to what its metric needs, with predictions scored."""
    if region is None or region.metric is None:
        return region
    return instrument_predictions(slice_loop(region, region.metric.deps))
