"""torch is optional: import it only when a runtime feature is used."""
from __future__ import annotations

INSTALL_HINT = 'install it with: pip install "evallint[runtime]" (or install the torch build for your machine first)'


class TorchMissing(ImportError):
    """torch is not installed; the message says how to install it."""


def require_torch():
    try:
        import torch  # noqa: PLC0415 - deliberately lazy: the static linter never needs torch
    except ImportError as exc:
        raise TorchMissing(f"this feature needs PyTorch, which is not installed; {INSTALL_HINT}") from exc
    return torch


def torch_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False
