"""Batches that are one object with fields (`data.x`, `data.y`, `data.to(device)`), as
graph loaders (torch_geometric) and dict-like collate functions yield them. Only used
inside the replay child: torch comes in as an argument."""
from __future__ import annotations

import re

# `for data in loader:` whose body reads `data.y` / `data.x`: the batch is a record.
_RECORD_LOOP = re.compile(r"^\s*for\s+(\w+)\s+in\s+[\w.]+\s*:", re.M)


def record_batches(code: str) -> bool:
    """Does the region iterate a loader whose batches it reads fields of?"""
    return any(re.search(rf"(?<![\w.]){re.escape(m.group(1))}\.(x|y)\b", code) for m in _RECORD_LOOP.finditer(code))


class Record:
    """One batch: each sample is one graph of one node (so `batch` numbers them)."""

    def __init__(self, torch, x, y) -> None:
        self.x, self.y = x, y
        self.num_graphs = x.shape[0]
        self.batch = torch.arange(x.shape[0], device=x.device)
        self.edge_index = torch.zeros(2, 0, dtype=torch.long, device=x.device)
        self._torch = torch

    def to(self, device, *args, **kwargs) -> "Record":
        return Record(self._torch, self.x.to(device), self.y.to(device))

    def __len__(self) -> int:
        return self.num_graphs


class RecordLoader:
    """Wraps the stand-in DataLoader: the same batches, each as a Record."""

    def __init__(self, torch, loader) -> None:
        self._torch, self._loader = torch, loader
        self.dataset = loader.dataset
        self.batch_size = loader.batch_size

    def __iter__(self):
        for x, y in self._loader:
            yield Record(self._torch, x, y)

    def __len__(self) -> int:
        return len(self._loader)
