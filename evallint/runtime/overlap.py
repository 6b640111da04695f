"""How much of the test set is in the training set: a check for a real run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ._torch import require_torch
from .fingerprint import Fingerprinter

# Digests of GPU items are gathered and copied to the CPU in chunks of this many.
_CHUNK = 1024


@dataclass(frozen=True)
class OverlapReport:
    n_train: int                   # training items fingerprinted
    n_test: int                    # test items checked
    n_found: int                   # test items whose content is also in training
    examples: tuple[tuple[int, int], ...] = field(default=())  # (test index, train index)
    sampled: bool = False          # True when max_items limited either side

    @property
    def fraction(self) -> float:
        return self.n_found / self.n_test if self.n_test else 0.0

    def __str__(self) -> str:
        pairs = ", ".join(f"test[{a}] = train[{b}]" for a, b in self.examples[:5])
        scope = " (sampled)" if self.sampled else ""
        text = (f"{self.n_found} of {self.n_test} test samples ({self.fraction:.1%}) "
                f"are also in the training set{scope}")
        return f"{text}; e.g. {pairs}" if pairs else text


def overlap(train_ds: Any, test_ds: Any, max_items: Optional[int] = None,
            key: Optional[Callable[[Any], Any]] = None, examples: int = 10) -> OverlapReport:
    """Fingerprint the items of two map-style datasets and report the fraction of test
    items whose content (tensor bytes, numbers, strings; nested tuples/lists/dicts)
    also occurs in the training set.

    `max_items` checks at most that many evenly spaced items of each dataset. `key`
    picks the part of an item to compare (e.g. `lambda item: item[0]` for inputs only).
    Loaders are accepted and their `.dataset` is used. Random augmentations make equal
    samples look different: pass datasets built with the evaluation transform.
    """
    torch = require_torch()
    train_ds = getattr(train_ds, "dataset", train_ds) if _is_loader(train_ds) else train_ds
    test_ds = getattr(test_ds, "dataset", test_ds) if _is_loader(test_ds) else test_ds
    fp = Fingerprinter(torch)
    train_idx = _indices(len(train_ds), max_items)
    test_idx = _indices(len(test_ds), max_items)
    seen: dict[bytes, int] = {}
    for i, digest in zip(train_idx, _digests(fp, train_ds, train_idx, key)):
        seen.setdefault(digest, i)
    found = 0
    hits: list[tuple[int, int]] = []
    for i, digest in zip(test_idx, _digests(fp, test_ds, test_idx, key)):
        j = seen.get(digest)
        if j is not None:
            found += 1
            if len(hits) < examples:
                hits.append((i, j))
    return OverlapReport(n_train=len(train_idx), n_test=len(test_idx), n_found=found,
                         examples=tuple(hits),
                         sampled=max_items is not None and (len(train_idx) < len(train_ds)
                                                            or len(test_idx) < len(test_ds)))


def _is_loader(obj: Any) -> bool:
    return hasattr(obj, "dataset") and hasattr(obj, "batch_size")


def _indices(n: int, max_items: Optional[int]) -> list[int]:
    if max_items is None or max_items >= n:
        return list(range(n))
    if max_items <= 0:
        return []
    step = n / max_items
    return sorted({int(k * step) for k in range(max_items)})


def _digests(fp: Fingerprinter, ds: Any, indices: list[int], key) -> list[bytes]:
    out: list[bytes] = []
    for start in range(0, len(indices), _CHUNK):
        keys: list[Any] = []
        pending: list = []
        for i in indices[start:start + _CHUNK]:
            item = ds[i]
            keys.append(fp.item_key(key(item) if key else item, pending))
        out.extend(fp.finish(keys, pending))
    return out
