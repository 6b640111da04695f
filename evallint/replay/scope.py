"""What replay can run at all: a file `check` can read and parse, and PyTorch code.

Replay answers the same questions as `check` about a file (an EL000/EL001 file is an
error of the whole run, with check's message) and never feeds torch stand-ins to
Keras/TensorFlow code: those findings get one clear verdict instead of an internal
error.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional

import libcst as cst

from ..facts import ModuleFacts

_KERAS_ROOTS = frozenset({"tensorflow", "keras"})
_TORCH_ROOTS = frozenset({"torch", "torchvision", "lightning", "pytorch_lightning", "torchmetrics", "timm",
                          "transformers"})
# A flagged line that names Keras/TensorFlow objects in a file that imports both.
_KERAS_LINE = re.compile(r"\b(tf|keras|tensorflow)\.|\.(fit|predict)\(")
KERAS_VERDICT = ("replay runs PyTorch regions; this code uses Keras/TensorFlow "
                 "(the finding stands on `check`'s analysis alone)")


def unusable_file(diagnostics, rules) -> Optional[str]:
    """check's message for a file it could not read or parse (EL000/EL001), else None."""
    engine = set(rules.engine_codes()) if hasattr(rules, "engine_codes") else {"EL000", "EL001"}
    for d in diagnostics:
        if d.code in engine:
            where = f"{d.path}:{d.line}:{d.column}" + (f" [cell {d.cell}]" if d.cell is not None else "")
            return f"{where}: {d.code} {d.message}; replay runs only files that `check` can parse"
    return None


@lru_cache(maxsize=8)  # one parse per file, whatever its number of findings
def _frameworks_of(text: str) -> frozenset[str]:
    try:
        return ModuleFacts(cst.parse_module(text)).frameworks
    except (cst.ParserSyntaxError, RecursionError):
        return frozenset()


def _frameworks(source) -> frozenset[str]:
    return _frameworks_of(source.text)


def foreign_framework(source, diag) -> Optional[str]:
    """Why a finding's code is not PyTorch code replay can run (Keras/TensorFlow), or None."""
    roots = _frameworks(source)
    if not roots & _KERAS_ROOTS:
        return None
    if not roots & _TORCH_ROOTS:
        return KERAS_VERDICT
    flagged = " ".join(getattr(diag, "source_lines", ()) or ())
    return KERAS_VERDICT if _KERAS_LINE.search(flagged) else None


# Errors that say the region needs a GPU or a process group, not that it is wrong.
_CUDA_ERRORS = re.compile(r"Invalid device, must be cuda device|not compiled with CUDA|no NVIDIA driver|"
                          r"CUDA driver|cuda.*(unavailable|not available)|Attempting to deserialize object on a CUDA",
                          re.I)
_DIST_ERRORS = re.compile(r"process group has not been initialized|init_process_group|Default process group", re.I)


def needs_device(reason: str) -> Optional[str]:
    """A clear verdict for a region that cannot run on this machine, or None."""
    if _CUDA_ERRORS.search(reason):
        return ("needs CUDA: the region puts tensors on a GPU (`.cuda()`, `device=rank`) and this machine's "
                "torch has none; run `evallint replay --device cuda` where a GPU is available "
                f"({reason})")
    if _DIST_ERRORS.search(reason):
        return ("needs torch.distributed: the region uses a process group (launched with torchrun); "
                f"replay runs one process ({reason})")
    return None
