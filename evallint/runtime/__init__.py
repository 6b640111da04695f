"""Runtime checks to call in a real run: dataset overlap and evaluation guards.

torch is imported only when one of these is used; importing this package is free.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._torch import INSTALL_HINT, TorchMissing

if TYPE_CHECKING:  # pragma: no cover
    from .guard import EvalGuard
    from .overlap import OverlapReport

__all__ = ["overlap", "guard", "OverlapReport", "EvalGuard", "EvalGuardWarning", "EvalGuardError",
           "TorchMissing", "INSTALL_HINT"]


def overlap(train_ds: Any, test_ds: Any, max_items: int | None = None, **kwargs: Any) -> "OverlapReport":
    from .overlap import overlap as _overlap

    return _overlap(train_ds, test_ds, max_items=max_items, **kwargs)


def guard(model: Any = None, strict: bool = False, **kwargs: Any) -> "EvalGuard":
    from .guard import guard as _guard

    return _guard(model, strict=strict, **kwargs)


def __getattr__(name: str) -> Any:
    # The result and exception types live in torch-free modules; load them on demand.
    if name in ("OverlapReport",):
        from . import overlap as _m

        return getattr(_m, name)
    if name in ("EvalGuard", "EvalGuardWarning", "EvalGuardError", "GuardIssue"):
        from . import guard as _m

        return getattr(_m, name)
    raise AttributeError(name)
