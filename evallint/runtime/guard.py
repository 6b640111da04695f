"""`with guard(model):` around an evaluation pass: mode, gradient and shape checks.

Built on torch's own dispatch hook (`torch.overrides.TorchFunctionMode`): every torch
function and tensor method called inside the block passes through `_GuardMode`, which
looks at the call and its result; nothing in torch is patched.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any

from ._torch import require_torch

# Functional ops whose result depends on train/eval mode, with the position of their
# `training` argument when passed positionally.
_MODE_OPS = {"dropout": 2, "alpha_dropout": 2, "feature_alpha_dropout": 2, "dropout1d": 2,
             "dropout2d": 2, "dropout3d": 2, "batch_norm": 5}
_COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge", "__eq__", "__ne__", "__lt__", "__le__",
                "__gt__", "__ge__"}


class EvalGuardWarning(UserWarning):
    """An evaluation pass does something that silently changes its result or cost."""


class EvalGuardError(RuntimeError):
    """Raised instead of the warning when the guard is strict."""


@dataclass(frozen=True)
class GuardIssue:
    kind: str      # "mode" | "grad" | "broadcast"
    message: str


class EvalGuard:
    """The context manager returned by `guard`; `.issues` lists what it found."""

    def __init__(self, model: Any = None, strict: bool = False, check_mode: bool = True,
                 check_grad: bool = True, check_broadcast: bool = True) -> None:
        self.model = model
        self.strict = strict
        self.checks = {"mode": check_mode, "grad": check_grad, "broadcast": check_broadcast}
        self.issues: list[GuardIssue] = []
        self._mode = None
        self._param_ids: frozenset[int] = frozenset()
        self._model_checked = False

    # Context manager ------------------------------------------------------------
    def __enter__(self) -> "EvalGuard":
        torch = require_torch()
        if self.model is not None and hasattr(self.model, "parameters"):
            self._param_ids = frozenset(id(p) for p in self.model.parameters())
        self._mode = _make_mode(torch, self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        mode, self._mode = self._mode, None
        if mode is not None:
            mode.__exit__(*exc)
        # A model that never touched a torch op with its parameters (e.g. a wrapper)
        # is still checked once, at the end.
        if not self._model_checked and self.model is not None and exc[0] is None:
            self._check_model_mode()

    # Findings -------------------------------------------------------------------
    def report(self, kind: str, message: str) -> None:
        if not self.checks.get(kind) or any(i.kind == kind for i in self.issues):
            return  # one report per kind per pass is enough
        self.issues.append(GuardIssue(kind, message))
        if self.strict:
            raise EvalGuardError(message)
        warnings.warn(EvalGuardWarning(message), stacklevel=_user_stacklevel())

    def _check_model_mode(self) -> None:
        self._model_checked = True
        model = self.model
        if getattr(model, "training", False):
            self.report("mode", f"{type(model).__name__} is in training mode during evaluation: "
                                "dropout and batch-norm layers behave as in training; call model.eval()")

    # Called by the mode for every torch call inside the block.
    def observe(self, torch, func, args: tuple, kwargs: dict, result: Any) -> None:
        name = getattr(func, "__name__", "")
        if not self._model_checked and self._param_ids and _touches(args, self._param_ids):
            self._check_model_mode()
        if name in _MODE_OPS and _arg(args, kwargs, "training", _MODE_OPS[name]):
            self.report("mode", f"{name} ran in training mode during evaluation: the model (or one "
                                "of its layers) is not in eval mode; call model.eval()")
        if name in _COMPARISONS and len(args) >= 2:
            _check_broadcast(self, torch, name, args[0], args[1])
        if (isinstance(result, torch.Tensor) and result.requires_grad
                and torch.is_grad_enabled()):
            self.report("grad", f"gradients are being recorded during evaluation ({name} returned a "
                                "tensor that requires grad); wrap the pass in torch.no_grad()")


def guard(model: Any = None, strict: bool = False, *, check_mode: bool = True,
          check_grad: bool = True, check_broadcast: bool = True) -> EvalGuard:
    """Watch an evaluation pass. Warns (EvalGuardWarning), or raises EvalGuardError when
    `strict`, when the model runs in training mode, when gradients are recorded, or when
    predictions and labels of shapes (N,) and (N, 1) are compared elementwise, which
    broadcasts to an N×N matrix and silently skews accuracy."""
    return EvalGuard(model, strict, check_mode, check_grad, check_broadcast)


def _make_mode(torch, owner: EvalGuard):
    from torch.overrides import TorchFunctionMode  # noqa: PLC0415 - torch is optional

    class _GuardMode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            owner.observe(torch, func, args, kwargs, result)
            return result

    return _GuardMode()


_HERE = os.path.dirname(os.path.abspath(__file__))


def _user_stacklevel() -> int:
    """The stack level of the first frame outside evallint.runtime and torch, so the
    warning points at the user's line, however deep the torch call was."""
    import torch

    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if not (name.startswith(_HERE) or name.startswith(torch_dir)):
            return level
        frame, level = frame.f_back, level + 1
    return 1


def _arg(args: tuple, kwargs: dict, name: str, index: int) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else False


def _touches(args: tuple, ids: frozenset[int]) -> bool:
    return any(id(a) in ids for a in args)


def _check_broadcast(owner: EvalGuard, torch, name: str, a: Any, b: Any) -> None:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return
    if a.shape == b.shape or a.dim() == 0 or b.dim() == 0:
        return
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        return
    numel = 1
    for s in shape:
        numel *= s
    # An outer broadcast creates more elements than either side had: (N,) vs (N, 1).
    if numel > max(a.numel(), b.numel()):
        owner.report("broadcast", f"elementwise comparison `{name}` broadcasts {tuple(a.shape)} against "
                                  f"{tuple(b.shape)} to {tuple(shape)}: predictions and labels have different "
                                  "shapes, so the count is over all pairs; squeeze or reshape one side")


__all__ = ["guard", "EvalGuard", "EvalGuardWarning", "EvalGuardError", "GuardIssue"]
