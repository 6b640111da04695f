"""Judges of the torchmetrics probes (see `lightning.py` and `metrics_child.py`).

- logged:  the value Lightning makes of what the step logs at the flagged line (the
           batch-size-weighted mean of per-batch values) vs the metric over the epoch,
           which the fix logs (the metric object, computed at epoch end).
- average: a multiclass metric built without `average=` vs the fraction of correct
           predictions (what `Accuracy(task="multiclass")` and sklearn report).
"""
from __future__ import annotations

import math

from .report import CONFIRMED, NOT_REPLAYABLE, NOT_REPRODUCED


def _close(a, b) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-6)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _failed(ev):
    from .probes import Judgement

    if "error" in ev.result:
        return Judgement(NOT_REPLAYABLE, ev.result["error"] if "torchmetrics" in ev.result["error"]
                         else f"the replay failed: {ev.result['error']}")
    w = ev.result["versions"].get("written")
    if w is None:
        return Judgement(NOT_REPLAYABLE, "the step did not run")
    if w.get("error"):
        error = w["error"]
        return Judgement(NOT_REPLAYABLE, error if "torchmetrics" in error else f"the step raised {error}")
    return None


def judge_logged(ev):
    from .probes import Judgement

    failed = _failed(ev)
    if failed:
        return failed
    w = ev.result["versions"]["written"]
    f = ev.result["versions"].get("fixed")
    line = w.get("line")
    mine = {n: e for n, e in w["logged"].items() if e["line"] == line}
    if not mine:
        return Judgement(NOT_REPLAYABLE, f"the step logs no number at line {line}")
    # A collection logs several names from one line: the one whose epoch value is off tells.
    off = [(n, e) for n, e in mine.items() if e["truth"] is not None and not _close(e["value"], e["truth"])]
    name, entry = (off or list(mine.items()))[0]
    fixed_entry = None if f is None or f.get("error") else f["logged"].get(name)
    value, truth = entry["value"], entry["truth"]
    fixed_value = fixed_entry["value"] if fixed_entry else None
    metric = f"{name} ({entry['metric']})" if entry["metric"] else name
    base = dict(metric=metric, written=f"{_pct(value)} (epoch mean of {entry['batches']} batch values)",
                fixed=(f"{_pct(fixed_value)} (compute() at epoch end)" if fixed_entry else
                       "no fix" if not ev.has_fix else "error"),
                truth=f"{_pct(truth)} (the metric over the epoch)", written_value=value,
                fixed_value=fixed_value, truth_value=truth)
    if truth is None:
        return Judgement(NOT_REPLAYABLE, f"`{name}` is not the value of a torchmetrics metric", **base)
    world = (f" on {w['batches']} unshuffled class-sorted batches; {_pct(w['fraction_correct'])} of the "
             "predictions are correct")
    if _close(value, truth):
        return Judgement(NOT_REPRODUCED, "the batch-size-weighted mean of the batch values equals the metric "
                                         "over the epoch (the metric decomposes over batches)" + world, **base)
    if not ev.has_fix:
        return Judgement(CONFIRMED, f"Lightning's epoch value is {_pct(value)}, the metric over the epoch "
                                    f"{_pct(truth)}{world}; the rule offers no fix", **base)
    if _close(fixed_value, truth):
        return Judgement(CONFIRMED, f"Lightning averages the batch values to {_pct(value)}; the fix logs the "
                                    f"metric object, whose epoch value is {_pct(truth)}{world}", **base)
    return Judgement(NOT_REPRODUCED, "the fixed step does not log the metric's epoch value", **base)


def judge_average(ev):
    from .probes import Judgement

    failed = _failed(ev)
    if failed:
        return failed
    w = ev.result["versions"]["written"]
    f = ev.result["versions"].get("fixed")
    value, truth = w["value"], w["fraction_correct"]
    fixed_value = None if f is None or f.get("error") else f["value"]
    if value is None:
        return Judgement(NOT_REPLAYABLE, "the metric computes no single number")
    base = dict(metric=f"per-class average ({w['classes']} classes)", written=_pct(value),
                fixed=_pct(fixed_value) if f is not None else "no fix",
                truth=f"{_pct(truth)} (fraction correct)", written_value=value, fixed_value=fixed_value,
                truth_value=truth)
    world = f" on unbalanced classes recalled unequally ({w['classes']} classes)"
    if _close(value, truth):
        return Judgement(NOT_REPRODUCED, "the per-class average equals the fraction of correct predictions"
                         + world, **base)
    kept = " (the fix writes the default out: the same value, now visible)" if _close(fixed_value, value) else ""
    return Judgement(CONFIRMED, f"the metric averages per class: {_pct(value)}, while {_pct(truth)} of the "
                                f"predictions are correct{world}{kept}; `average=\"micro\"` gives the fraction "
                                "correct", **base)
