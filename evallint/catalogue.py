"""The rule catalogue as data: every code that is reserved, built or not.

Codes are fixed (configs and `# noqa` comments depend on them), so the engine knows the
whole catalogue, not only the rules installed: `explain` of a planned rule says it is
planned, and a `# noqa` naming a planned code is not a typo. The engine reads no rule's
behaviour from here, only its code and name.
"""
from __future__ import annotations

from typing import Optional

CATALOGUE: tuple[tuple[str, str], ...] = (
    ("EL000", "syntax-error"),
    ("EL001", "unreadable-file"),
    ("EL101", "accumulator-overwrite"),
    ("EL102", "percent-in-denominator"),
    ("EL103", "batch-count-denominator"),
    ("EL104", "fixed-batch-size-count"),
    ("EL105", "integer-division-metric"),
    ("EL106", "tensor-accumulator"),
    ("EL107", "loss-normaliser-mismatch"),
    ("EL108", "argmax-wrong-dim"),
    ("EL109", "threshold-on-logits"),
    ("EL110", "mean-of-batch-means"),
    ("EL111", "sklearn-metric-argument-order"),
    ("EL112", "auc-on-hard-labels"),
    ("EL113", "compare-logits-to-labels"),
    ("EL201", "missing-eval-mode"),
    ("EL202", "missing-no-grad"),
    ("EL203", "train-mode-not-restored"),
    ("EL204", "mode-call-missing-parens"),
    ("EL205", "optimizer-step-in-eval"),
    ("EL206", "no-grad-bare-call"),
    ("EL207", "functional-dropout-ignores-eval"),
    ("EL301", "post-forward-reshape"),
    ("EL302", "train-test-same-source"),
    ("EL303", "stale-variable-in-eval"),
    ("EL304", "model-selection-on-test"),
    ("EL305", "preprocessing-fit-on-test"),
    ("EL306", "augmentation-in-eval-transform"),
    ("EL307", "eval-loader-drop-last"),
    ("EL308", "distributed-eval-padding"),
    ("EL309", "eval-preprocessing-mismatch"),
    ("EL401", "logged-metric-value"),
    ("EL402", "metric-shared-across-stages"),
    ("EL403", "implicit-macro-average"),
    ("EL404", "metric-compute-without-reset"),
    ("EL405", "ddp-log-without-sync"),
    ("EL501", "keras-binary-loss-multiclass"),
    ("EL502", "keras-logits-loss-mismatch"),
    ("EL503", "keras-shuffled-predict-labels"),
    ("EL601", "softmax-before-cross-entropy"),
    ("EL602", "sigmoid-before-bce-with-logits"),
    ("EL603", "broadcast-shape-mismatch"),
)

_BY_CODE = dict(CATALOGUE)
_BY_NAME = {name: code for code, name in CATALOGUE}


def catalogued(code_or_name: str) -> Optional[tuple[str, str]]:
    """(code, name) of a catalogued rule named by code or name, else None."""
    key = code_or_name.strip()
    if key.upper() in _BY_CODE:
        return key.upper(), _BY_CODE[key.upper()]
    if key in _BY_NAME:
        return _BY_NAME[key], key
    return None


def known_codes() -> frozenset[str]:
    return frozenset(_BY_CODE)
