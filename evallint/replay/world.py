"""The synthetic world a region runs in, chosen from how the region's code looks.

Only the shape of the data is chosen here (plain values, no torch): how many samples
and classes, whether the head is binary, how labels are laid out, how wide the inputs
are. The child builds the tensors from this description.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

# 1000 samples in batches of 64: fifteen full batches and a short last one of 40, so
# "last batch only" and "divided by the number of batches" errors show.
N_SAMPLES = 1000
BATCH_SIZE = 64
CLASSES = 10
PLANTED_ACCURACY = 0.73

_BINARY = re.compile(r"sigmoid|BCE|binary|>=?\s*0?\.5\b|\.round\(\)|>=?\s*0(?![.\w])")
# `logits > 0` thresholds raw scores: the model's head emits logits.
_LOGIT_THRESHOLD = re.compile(r">=?\s*0(?![.\w])")
_FLAT_HINT = re.compile(r"\.(unsqueeze)\(\s*-?1\s*\)|\.(view|reshape)\(\s*-1\s*,\s*1\s*\)|\[\s*:\s*,\s*None\s*\]"
                        r"|\.squeeze\(|\.flatten\(|\.(view|reshape)\(\s*-1\s*\)|\.ravel\(")
_WIDTH = re.compile(r"\.(?:view|reshape)\(\s*(?:-1|\w+\.size\(0\)|\w+\.shape\[0\])\s*,\s*([\d\s*]+)\)")


@dataclass(frozen=True)
class World:
    n: int = N_SAMPLES
    batch_size: int = BATCH_SIZE
    classes: int = CLASSES
    accuracy: float = PLANTED_ACCURACY
    head: str = "multiclass"          # "multiclass" | "binary"
    binary_output: str = "probs"      # "probs" (the model ends in a sigmoid) | "logits"
    label_layout: str = "index"       # "index" (N,) class ids | "column" (N,1) floats | "flat" (N,) floats
    features: int = 16
    batches: str = "pair"              # "pair" (inputs, labels) | "record" (one object: `data.x`, `data.y`)
    loss_reduction: str = "mean"      # how the stand-in criterion reduces ("sum" where the user's does)

    def to_json(self) -> dict:
        return asdict(self)


def world_for(code: str) -> World:
    binary = bool(_BINARY.search(code))
    width = 16
    m = _WIDTH.search(code)
    if m:
        try:
            width = max(1, min(1 << 16, eval(m.group(1), {"__builtins__": {}})))  # digits and * only
        except Exception:  # noqa: BLE001 - a width we cannot read: keep the default
            width = 16
    if not binary:
        return World(features=width)
    return World(classes=2, head="binary",
                 binary_output="logits" if "sigmoid" in code or "WithLogits" in code or _LOGIT_THRESHOLD.search(code)
                 else "probs",
                 label_layout="flat" if _FLAT_HINT.search(code) else "column", features=width)
