"""Stand-ins for datasets replay cannot build for real, used only inside the child.

Replay never downloads or reads data. A torchvision dataset (`CIFAR10(root, train=True)`)
or a dataset the user's code loads from files is replaced by seeded samples keyed by
how it is built: the same class with the same root and split (or the same construction
text) yields the same samples, another split other ones. That is what a deterministic
dataset does, and what the overlap probe needs to tell a test set that is the training
set from a real one. Transforms are kept but not applied: the identity of a sample is
what is compared, and random augmentations would hide it.
"""
from __future__ import annotations

import sys
import types
import zlib
from typing import Any

# Sizes of the well-known splits, so that `random_split(ds, [50000, 10000])` works.
_SPLIT_SIZES = {
    "MNIST": (60000, 10000), "FashionMNIST": (60000, 10000), "KMNIST": (60000, 10000),
    "EMNIST": (112800, 18800), "QMNIST": (60000, 60000), "CIFAR10": (50000, 10000),
    "CIFAR100": (50000, 10000), "SVHN": (73257, 26032), "STL10": (5000, 8000),
}
_DEFAULT_SIZE = 1000
_SHAPE = (1, 8, 8)  # small images: only their identity matters here


class KeyedDataset:
    """A map-style dataset of seeded (image, label) samples determined by `key`."""

    def __init__(self, torch, key: str, size: int, transform: Any = None, target_transform: Any = None) -> None:
        self.key, self.transform, self.target_transform = key, transform, target_transform
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        self.data = torch.randint(0, 256, (size, *_SHAPE[1:]), generator=g, dtype=torch.uint8)
        self.targets = torch.randint(0, 10, (size,), generator=g).tolist()
        self.classes = [str(c) for c in range(10)]
        self._torch = torch

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return self.data[i].unsqueeze(0).float() / 255.0, self.targets[i]

    def __repr__(self) -> str:
        return f"<replay stand-in dataset {self.key!r}, {len(self)} samples>"


def _split_of(args: tuple, kwargs: dict) -> str:
    if "split" in kwargs:
        return str(kwargs["split"])
    if "train" in kwargs:
        return "train" if kwargs["train"] else "test"
    if len(args) >= 2 and isinstance(args[1], bool):
        return "train" if args[1] else "test"
    return "train"  # torchvision's default: train=True


def _dataset_class(torch, name: str):
    train_size, test_size = _SPLIT_SIZES.get(name, (_DEFAULT_SIZE, _DEFAULT_SIZE))

    def __init__(self, *args, **kwargs):
        root = kwargs.get("root", args[0] if args else "")
        split = _split_of(args, kwargs)
        size = train_size if split == "train" else test_size
        KeyedDataset.__init__(self, torch, f"torchvision.{name}|{root}|{split}", size,
                              kwargs.get("transform"), kwargs.get("target_transform"))

    return type(name, (KeyedDataset,), {"__init__": __init__})


class _Transform:
    """Any torchvision transform: keeps its arguments, returns its input unchanged."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs

    def __call__(self, x, *rest):
        return x


def _module(name: str, getattr_fn) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__["__getattr__"] = getattr_fn
    mod.__dict__["__evallint_standin__"] = True
    return mod


def install(torch) -> None:
    """Put a stand-in `torchvision` (datasets, transforms) into sys.modules."""
    classes: dict = {}

    def datasets_attr(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in classes:
            classes[name] = _dataset_class(torch, name)
        return classes[name]

    def transforms_attr(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (_Transform,), {})

    def vision_attr(name: str):
        raise AttributeError(f"replay stands in only for torchvision.datasets and torchvision.transforms, "
                             f"not torchvision.{name}")

    vision = _module("torchvision", vision_attr)
    datasets = _module("torchvision.datasets", datasets_attr)
    transforms = _module("torchvision.transforms", transforms_attr)
    v2 = _module("torchvision.transforms.v2", transforms_attr)
    vision.datasets, vision.transforms, transforms.v2 = datasets, transforms, v2
    for mod in (vision, datasets, transforms, v2):
        mod.__path__ = []  # a package, so that `import torchvision.transforms as T` works
        sys.modules[mod.__name__] = mod


def keyed(torch):
    """`__evallint_keyed__(key)`: the stand-in for a dataset built from files or from a
    class replay does not run, keyed by the text of its construction."""
    def make(key: str) -> KeyedDataset:
        return KeyedDataset(torch, f"built as {key}", _DEFAULT_SIZE)

    return make
