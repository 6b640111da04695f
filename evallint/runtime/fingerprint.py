"""Content fingerprints of dataset items, identical for equal content on any device.

A tensor's fingerprint is a pair of 64-bit linear hashes of its bytes, computed with
torch ops where the tensor lives: on a GPU the reduction runs there and only the two
integers of each item travel to the CPU, in batches. Everything else (numbers,
strings, nested tuples/lists/dicts) is hashed by its repr-stable encoding.
"""
from __future__ import annotations

import hashlib
import struct
from typing import Any, Callable

# Fixed odd multipliers mixed with the byte position; odd keeps every byte significant
# modulo 2**64. Two lanes make accidental collisions of different items negligible.
_MUL_A = 0x9E3779B97F4A7C15 - (1 << 64)
_MUL_B = 0xC2B2AE3D27D4EB4F - (1 << 64)


class _WeightCache:
    """Per (length, device) position weights, built once and reused for every item."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str], Any] = {}

    def get(self, torch, n: int, device) -> Any:
        key = (n, str(device))
        w = self._cache.get(key)
        if w is None:
            pos = torch.arange(1, n + 1, dtype=torch.int64, device=device)
            # Two lanes of position-dependent odd weights (a cheap integer mix).
            wa = (pos * _MUL_A) ^ (pos >> 3)
            wb = (pos * _MUL_B) ^ (pos << 7)
            w = torch.stack([wa | 1, wb | 1])
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = w
        return w


class Fingerprinter:
    """Turns items into hashable digests. GPU tensors are reduced on the GPU; their
    2×int64 digests are gathered and moved to the CPU once per `flush`."""

    def __init__(self, torch_module) -> None:
        self.torch = torch_module
        self.weights = _WeightCache()

    def tensor_digest(self, t) -> Any:
        """A (2,) int64 tensor on t's device: the item's content hash (bytes only)."""
        torch = self.torch
        flat = t.detach().contiguous().reshape(-1)
        if flat.dtype == torch.bool:
            flat = flat.to(torch.uint8)
        if flat.is_complex():
            flat = torch.view_as_real(flat).reshape(-1)
        raw = flat.view(torch.uint8).to(torch.int64)
        if raw.numel() == 0:
            return torch.zeros(2, dtype=torch.int64, device=t.device)
        w = self.weights.get(torch, raw.numel(), raw.device)
        # int64 products and sums wrap identically on CPU and CUDA.
        return (w * (raw + 1)).sum(dim=1)

    def item_key(self, item: Any, pending: list) -> Any:
        """A hashable structure for `item`; tensor digests are appended to `pending`
        (still on their device) and referenced by index, to be resolved in `finish`."""
        torch = self.torch
        if isinstance(item, torch.Tensor):
            pending.append(self.tensor_digest(item))
            return ("T", str(item.dtype), tuple(item.shape), len(pending) - 1)
        if isinstance(item, (tuple, list)):
            return ("L", tuple(self.item_key(x, pending) for x in item))
        if isinstance(item, dict):
            return ("D", tuple((str(k), self.item_key(item[k], pending)) for k in sorted(item, key=str)))
        if isinstance(item, bool) or item is None:
            return ("S", repr(item))
        if isinstance(item, int):
            return ("I", item)
        if isinstance(item, float):
            return ("F", struct.pack("<d", item))
        if isinstance(item, (str, bytes)):
            return ("S", item)
        array_bytes = _array_bytes(item)
        if array_bytes is not None:
            return ("A", array_bytes)
        return ("R", type(item).__name__, repr(item))

    def finish(self, keys: list[Any], pending: list) -> list[bytes]:
        """Resolve pending tensor digests (one transfer per device) and hash each key."""
        resolved: list[tuple[int, int]] = []
        if pending:
            torch = self.torch
            by_device: dict[str, list[int]] = {}
            for i, d in enumerate(pending):
                by_device.setdefault(str(d.device), []).append(i)
            resolved = [(0, 0)] * len(pending)
            for idxs in by_device.values():
                host = torch.stack([pending[i] for i in idxs]).cpu().tolist()
                for i, pair in zip(idxs, host):
                    resolved[i] = (pair[0], pair[1])
        return [_digest(_substitute(k, resolved)) for k in keys]


def _substitute(key: Any, resolved: list[tuple[int, int]]) -> Any:
    if isinstance(key, tuple) and key and key[0] == "T":
        return ("T", key[1], key[2], resolved[key[3]])
    if isinstance(key, tuple) and key and key[0] in ("L", "D"):
        if key[0] == "L":
            return ("L", tuple(_substitute(k, resolved) for k in key[1]))
        return ("D", tuple((name, _substitute(k, resolved)) for name, k in key[1]))
    return key


def _digest(key: Any) -> bytes:
    return hashlib.blake2b(repr(key).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _array_bytes(obj: Any):
    """numpy-like arrays (anything with dtype, shape and tobytes), without importing numpy."""
    tobytes: Callable | None = getattr(obj, "tobytes", None)
    if tobytes is None or not hasattr(obj, "dtype") or not hasattr(obj, "shape"):
        return None
    try:
        return (str(obj.dtype), tuple(obj.shape), tobytes())
    except Exception:  # noqa: BLE001 - an exotic object: fall back to repr
        return None
