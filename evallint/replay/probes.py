"""Probes: what replay observes for a rule, and how it judges the observation.

A rule opts in with a class attribute, `replay_probe = "metric"` (or a tuple of probe
names; the first that confirms wins). The engine never names rules: adding replay to
a rule is setting that attribute, and adding a new kind of evidence is one more entry
in PROBES.

- metric:  the metric as written vs after the fix vs the ground truth
- mode:    two passes over the same batches differ as written, agree after the fix
- grad:    the model's outputs require grad as written, not after the fix
- overlap: the fraction of test samples found in the training set
- params:  the model's parameters change during an evaluation pass (it trains on them)
- graph:   a running total holds an autograd graph as written, a number after the fix
- train_mode: training steps that run with the model in eval mode (a later epoch after
           an evaluation that never switched back)
- eval_passes: the file's own nn.Module, two passes in eval mode on one input (modules.py)
- logged, average: torchmetrics values as Lightning logs them, per-class averages
           (metric_probes.py)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Optional

from .metric_probes import judge_average, judge_logged
from .modules import judge_eval_passes
from .region import Sink
from .report import CONFIRMED, NOT_REPLAYABLE, NOT_REPRODUCED


@dataclass(frozen=True)
class Evidence:
    """What the parent knows about one finding's job, and the child's answer."""

    result: dict                       # the child's result for the job
    has_fix: bool
    metric: Optional[Sink] = None      # the metric as written
    metric_fixed: Optional[Sink] = None
    sink_index: Optional[int] = None   # positions of the metric in each version's sinks
    sink_index_fixed: Optional[int] = None
    alternatives: tuple = ()           # (Sink, index) of other values, latest first
    metric_together: Optional[Sink] = None  # with the fixes of the findings sharing the metric
    sink_index_together: Optional[int] = None
    partners: tuple = ()               # those findings' codes
    code: str = ""                     # the finding's own code
    flagged: frozenset = frozenset()   # the names the flagged statement assigns
    neighbours: tuple = ()             # "EL104 (line 43)": other findings in the same region


@dataclass(frozen=True)
class Judgement:
    verdict: str
    reason: str = ""
    metric: Optional[str] = None
    written: Optional[str] = None
    fixed: Optional[str] = None
    truth: Optional[str] = None
    written_value: Optional[float] = None
    fixed_value: Optional[float] = None
    truth_value: Optional[float] = None
    together: Optional[str] = None
    together_value: Optional[float] = None


@dataclass(frozen=True)
class Probe:
    name: str
    job: str                           # "region" (cut and run the loop) | "datasets"
    judge: Callable[[Evidence], Judgement]


def _close(a: Optional[float], b: Optional[float]) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-6)


def fmt(value: Optional[float]) -> str:
    if value is None:
        return "—"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value)}" if abs(value) >= 100 else f"{value:.1f}"
    if 1e-3 <= abs(value) < 1e6:
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.6g}"
    return f"{value:.3e}"


def unit_of(sink: Sink) -> str:
    """Which ground-truth quantity a metric expression stands for."""
    text = sink.text
    if re.search(r"loss", text, re.I):
        return "loss"
    if re.search(r"(?<![\w.])100(\.0*)?(?![\w.])", text):
        return "percent"
    if "/" in text or re.search(r"\bmean\b|accuracy|acc\b", text):
        return "fraction"
    if re.search(r"err|wrong|mistake", sink.label, re.I) and "/" not in text:
        return "errors"  # a count of misclassified samples
    if re.search(r"total|count|num|seen|samples|^n$", sink.label, re.I):
        return "total"
    return "correct"


def _region_failed(ev: Evidence) -> Optional[Judgement]:
    if "error" in ev.result:
        return Judgement(NOT_REPLAYABLE, f"the replay failed: {ev.result['error']}")
    written = ev.result["versions"].get("written")
    if written is None:
        return Judgement(NOT_REPLAYABLE, "the region did not run")
    return None


def _first_run(ev: Evidence, version: str) -> Optional[dict]:
    v = ev.result["versions"].get(version)
    return v["runs"][0] if v else None


def _sink_value(run: Optional[dict], index: Optional[int]) -> Optional[float]:
    if run is None or index is None or index >= len(run["sinks"]):
        return None
    return run["sinks"][index]


# What each ground-truth quantity is, in the words a reason uses.
_WHAT = {"percent": "an accuracy in %", "fraction": "an accuracy (a fraction)", "loss": "a loss",
         "total": "a sample count", "correct": "a count"}


def judge_metric(ev: Evidence) -> Judgement:
    """`_judge_metric`, its reason saying what the number is (an accuracy in %, a loss)."""
    j = _judge_metric(ev)
    if j.metric is None or j.written_value is None and j.written != "error" or j.verdict == NOT_REPLAYABLE:
        return j
    sink = ev.metric_fixed or ev.metric
    what = _WHAT.get(unit_of(sink), "") if sink is not None and not j.metric.startswith("accuracy of") else \
        _WHAT["fraction"]
    if j.metric.endswith("(last batch)"):
        what = f"{what}, of the last batch"
    return Judgement(**{**j.__dict__, "reason": f"`{j.metric}` is {what}: {j.reason}"}) if what else j


def _judge_metric(ev: Evidence) -> Judgement:
    failed = _region_failed(ev)
    if failed:
        return failed
    if ev.metric is None:
        return Judgement(NOT_REPLAYABLE, "no metric is printed, returned or assigned after the loop")
    w_run, f_run = _first_run(ev, "written"), _first_run(ev, "fixed")
    metric, metric_fixed = ev.metric, ev.metric_fixed or ev.metric
    w = _sink_value(w_run, ev.sink_index)
    f = _sink_value(f_run, ev.sink_index_fixed)
    if w is None and not w_run["error"]:
        # The flagged value is not a number (a tensor, a list): judge the latest value that is.
        for sink, idx in ev.alternatives:
            if _sink_value(w_run, idx) is not None:
                metric = metric_fixed = sink
                w, f = _sink_value(w_run, idx), _sink_value(f_run, idx)
                break
    unit = unit_of(metric_fixed)
    truth = ev.result["truth"][unit]
    label = metric.label
    if metric.scope == "last batch" and f"last_{unit}" in ev.result["truth"]:
        # a per-batch value (printed inside the loop): the last, short batch's
        truth, label = ev.result["truth"][f"last_{unit}"], f"{metric.label} (last batch)"
    base = dict(metric=label, written=fmt(w), fixed=fmt(f) if ev.has_fix else "no fix",
                truth=fmt(truth), written_value=w, fixed_value=f, truth_value=truth)
    if w_run["error"]:
        if _gets_past(w_run, f_run):
            return Judgement(CONFIRMED, _crash_reason(w_run, f_run), **{**base, "written": "error"})
        breaks = _breaks_on_flagged(ev, w_run)
        if breaks and not ev.has_fix:
            return Judgement(CONFIRMED, f"as written the region raises {w_run['error']} at `{w_run['error_line']}`, "
                                        f"which uses the flagged `{breaks}`; the rule offers no fix",
                             **{**base, "written": "error"})
        return Judgement(NOT_REPLAYABLE, f"the region raised {w_run['error']}", **base)
    if w is None:
        return Judgement(NOT_REPLAYABLE, f"the region computes no number to compare (`{metric.label}` "
                                         "is not a scalar)", metric=metric.label)
    if f_run is not None and f_run["error"]:
        return Judgement(NOT_REPRODUCED, f"the fixed region raises {f_run['error']}", **base)
    together = _sink_value(_first_run(ev, "together"), ev.sink_index_together) if ev.partners else None
    if together is not None:
        base.update(together=fmt(together), together_value=together)
    shared = _attribution(ev, w, f, together, truth) if together is not None else ""
    if _close(w, truth):
        extra = "; the fix changes no value" if _close(w, f) else ""
        return Judgement(NOT_REPRODUCED, f"as written the metric equals the ground truth{extra}", **base)
    if ev.has_fix and _close(w, f):
        if shared:
            return Judgement(NOT_REPRODUCED, f"this fix alone changes no value; {shared}", **base)
        return Judgement(NOT_REPRODUCED, "the fix changes no computed value on synthetic data", **base)
    off = _ratio(w, truth)
    if not ev.has_fix:
        return Judgement(CONFIRMED, f"as written {off}; the rule offers no fix", **base)
    if _close(f, truth):
        return Judgement(CONFIRMED, f"as written {off}; the fix restores the ground truth", **base)
    if f is not None and abs(f - truth) <= 0.05 * abs(truth) and abs(w - truth) > 5 * abs(f - truth):
        # e.g. a mean of batch means: the fix is right, the short last batch weighs a little more
        rest = f"; the rest is {_others(ev.neighbours)} in the same region" if ev.neighbours else ""
        return Judgement(CONFIRMED, f"as written {off}; the fix brings it within "
                                    f"{abs(f - truth) / abs(truth):.1%} of the ground truth{rest}", **base)
    if _towards(w, f, truth):
        # Another bug on the same metric keeps it from the truth: the fix is still right.
        rest = shared or (f"the fix moves it to {fmt(f)}, towards the ground truth; the gap that remains "
                          + (f"is {_others(ev.neighbours)} in the same region" if ev.neighbours
                             else "points at a bug no rule flagged"))
        return Judgement(CONFIRMED, f"as written {off}; {rest}", **base)
    return Judgement(NOT_REPRODUCED, f"the fixed value {fmt(f)} also differs from the ground truth"
                     + (f"; {shared}" if shared else ""), **base)


def _breaks_on_flagged(ev: Evidence, run: dict) -> str:
    """The flagged name that the statement which raised reads, or ""."""
    text = run.get("error_line") or ""
    return next((n for n in sorted(ev.flagged) if n != "_" and re.search(rf"(?<![\w.]){re.escape(n)}\b", text)), "")


def _distance(value: float, truth: float) -> float:
    """How far a value is from the truth: in orders of magnitude when both have one sign
    (a 10^4 error and a 10^2 error are far apart), else relatively."""
    if value and truth and (value > 0) == (truth > 0):
        return abs(math.log10(value / truth))
    return abs(value - truth) / max(abs(truth), 1e-9)


def _towards(w: float, f: Optional[float], truth: float) -> bool:
    return f is not None and not _close(w, f) and _distance(f, truth) < _distance(w, truth) - 1e-6


def _attribution(ev: Evidence, w: float, f: Optional[float], together: float, truth: float) -> str:
    """"EL101 alone: 0.0073 -> 0.16; with EL102 fixed as well: 73.0 = truth"."""
    others = " and ".join(ev.partners)
    alone = f"{ev.code} alone: {fmt(w)} → {fmt(f)}" if ev.code else f"this fix alone: {fmt(w)} → {fmt(f)}"
    rest = [n for n in ev.neighbours if n.split(" ")[0] not in ev.partners]
    end = "= truth" if _close(together, truth) else \
        f"(truth {fmt(truth)}): the gap that remains " + \
        (f"is {_others(rest)} in the same region" if rest else "points at a bug no rule flagged")
    return f"{alone}; with {others} fixed as well: {fmt(together)} {end}"


def _others(neighbours) -> str:
    """"EL104 (line 43)" / "EL104 (line 43) and EL105 (line 47)"."""
    return " and ".join(neighbours)


def _ratio(value: float, truth: float) -> str:
    if truth and value and (value / truth >= 5 or truth / value >= 5):
        r = truth / value if abs(truth) > abs(value) else value / truth
        exp = math.log10(abs(r))
        scale = f"10^{round(exp)}" if abs(exp - round(exp)) < 0.05 and abs(exp) >= 2 else f"{abs(r):.3g}"
        return f"off by a factor of {scale}"
    return f"off by {abs(value - truth):.4g}"


def _gets_past(w_run: dict, f_run: Optional[dict]) -> bool:
    """The code as written crashes and the fixed code does not crash the same way."""
    return bool(w_run["error"]) and f_run is not None and f_run["error"] != w_run["error"]


def _crash_reason(w_run: dict, f_run: dict) -> str:
    if not f_run["error"]:
        return f"as written the region raises {w_run['error']}; the fix runs"
    return (f"as written the region raises {w_run['error']}; the fix gets past it "
            f"(the stand-ins then stop at {f_run['error']})")


def judge_mode(ev: Evidence) -> Judgement:
    failed = _region_failed(ev)
    if failed:
        return failed
    w_ver, f_ver = ev.result["versions"]["written"], ev.result["versions"].get("fixed")
    w_run = w_ver["runs"][0]
    if w_run["error"]:
        if f_ver and _gets_past(w_run, f_ver["runs"][0]):
            return Judgement(CONFIRMED, _crash_reason(w_run, f_ver["runs"][0]),
                             metric="model outputs", written="error", fixed="runs")
        return Judgement(NOT_REPLAYABLE, f"the region raised {w_run['error']}")
    if not w_run["forward_calls"]:
        return Judgement(NOT_REPLAYABLE, "the region never calls the model")
    w_diff = w_ver["max_diff"]
    f_diff = f_ver["max_diff"] if f_ver else None
    metric = ev.metric.label if ev.metric else "model outputs"

    def show(ver, diff):
        runs = ver["runs"]
        idx = ev.sink_index if ver is w_ver else ev.sink_index_fixed
        vals = [_sink_value(r, idx) for r in runs]
        mode = "train mode" if runs[0]["training"] else "eval mode"
        agree = "passes agree" if not diff else f"passes differ (max |Δ| {diff:.3g})"
        shown = " vs ".join(fmt(v) for v in vals) if idx is not None and vals[0] is not None else ""
        return f"{shown}, {agree}, {mode}" if shown else f"{agree}, {mode}"

    truth = None
    if ev.metric is not None and _sink_value(w_ver["runs"][0], ev.sink_index) is not None:
        truth = ev.result["truth"][unit_of(ev.metric_fixed or ev.metric)]
    base = dict(metric=metric, written=show(w_ver, w_diff), truth=fmt(truth) if truth is not None else "—",
                fixed=show(f_ver, f_diff) if f_ver else "no fix", written_value=w_diff, fixed_value=f_diff,
                truth_value=truth)
    if not w_diff:
        return Judgement(NOT_REPRODUCED, "two passes over the same batches agree as written", **base)
    if not ev.has_fix:
        return Judgement(CONFIRMED, "two passes over the same batches differ; the rule offers no fix", **base)
    if f_ver and not f_ver["runs"][0]["error"] and not f_diff:
        return Judgement(CONFIRMED, "two passes over the same batches differ as written and agree after the fix",
                         **base)
    return Judgement(NOT_REPRODUCED, "the passes still differ after the fix", **base)


def judge_grad(ev: Evidence) -> Judgement:
    failed = _region_failed(ev)
    if failed:
        return failed
    w_run, f_run = _first_run(ev, "written"), _first_run(ev, "fixed")
    if w_run["error"]:
        if _gets_past(w_run, f_run):
            return Judgement(CONFIRMED, _crash_reason(w_run, f_run),
                             metric="outputs.requires_grad", written="error", fixed="runs")
        return Judgement(NOT_REPLAYABLE, f"the region raised {w_run['error']}")
    if not w_run["forward_calls"]:
        return Judgement(NOT_REPLAYABLE, "the region never calls the model")

    def show(run):
        return "no fix" if run is None else ("error" if run["error"] else f"requires_grad={run['requires_grad']}")

    base = dict(metric="outputs.requires_grad", written=show(w_run), fixed=show(f_run),
                truth="requires_grad=False", written_value=float(w_run["requires_grad"]),
                fixed_value=None if f_run is None else float(f_run["requires_grad"]), truth_value=0.0)
    if not w_run["requires_grad"]:
        return Judgement(NOT_REPRODUCED, "outputs do not require grad as written", **base)
    if not ev.has_fix:
        return Judgement(CONFIRMED, "autograd records every forward pass; the rule offers no fix", **base)
    if f_run and not f_run["error"] and not f_run["requires_grad"]:
        return Judgement(CONFIRMED, "autograd records every forward pass as written, none after the fix", **base)
    return Judgement(NOT_REPRODUCED, "outputs still require grad after the fix", **base)


def judge_overlap(ev: Evidence) -> Judgement:
    if "error" in ev.result:
        return Judgement(NOT_REPLAYABLE, f"the replay failed: {ev.result['error']}")
    w = ev.result["versions"].get("written")
    f = ev.result["versions"].get("fixed")
    if w is None or w.get("error"):
        return Judgement(NOT_REPLAYABLE, f"the datasets could not be built: {w and w.get('error')}")

    def show(r):
        if r is None:
            return "no fix"
        if r.get("error"):
            return "error"
        return f"{r['n_found']}/{r['n_test']} ({r['fraction']:.1%})"

    base = dict(metric="test samples found in training", written=show(w), fixed=show(f), truth="0 (0.0%)",
                written_value=w["fraction"], fixed_value=None if not f or f.get("error") else f["fraction"],
                truth_value=0.0)
    how = (" (data read from files stand in as seeded samples keyed by how each set is built: "
           "built the same way, they hold the same samples)") if w.get("keyed") else ""
    if not w["n_found"]:
        return Judgement(NOT_REPRODUCED, "no test sample is in the training set" + how, **base)
    if f is not None and not f.get("error") and not f["n_found"]:
        return Judgement(CONFIRMED, "the test set overlaps the training set as written, not after the fix" + how,
                         **base)
    return Judgement(CONFIRMED, "the test set overlaps the training set" + how, **base)


def _model_runs(ev: Evidence) -> tuple[Optional[dict], Optional[dict], Optional[Judgement]]:
    """The first runs as written and fixed, or why the region gives nothing to judge
    (it failed, raised, or never called the model)."""
    failed = _region_failed(ev)
    if failed:
        return None, None, failed
    w_run, f_run = _first_run(ev, "written"), _first_run(ev, "fixed")
    if w_run["error"]:
        return w_run, f_run, Judgement(NOT_REPLAYABLE, f"the region raised {w_run['error']}")
    if not w_run["forward_calls"]:
        return w_run, f_run, Judgement(NOT_REPLAYABLE, "the region never calls the model")
    return w_run, f_run, None


def judge_params(ev: Evidence) -> Judgement:
    """Evaluation must never change the model: its parameters before and after a pass."""
    w_run, f_run, failed = _model_runs(ev)
    if failed:
        return failed

    def show(run):
        return "no fix" if run is None else ("error" if run["error"] else
                                             "parameters changed" if run["state_changed"] else "unchanged")

    base = dict(metric="model parameters", written=show(w_run), fixed=show(f_run), truth="unchanged",
                written_value=float(w_run["state_changed"]),
                fixed_value=None if f_run is None else float(f_run["state_changed"]), truth_value=0.0)
    if not w_run["state_changed"]:
        return Judgement(NOT_REPRODUCED, "the evaluation pass leaves the parameters unchanged", **base)
    if f_run is not None and not f_run["error"] and not f_run["state_changed"]:
        return Judgement(CONFIRMED, "the evaluation pass trains the model as written, not after the fix", **base)
    return Judgement(CONFIRMED, "the evaluation pass changes the model's parameters: it trains on the data "
                                "it is scored on", **base)


def judge_train_mode(ev: Evidence) -> Judgement:
    """Training steps (forward passes whose outputs are backpropagated) that run with the
    model in evaluation mode: dropout off, batch-norm frozen, as written vs after the fix."""
    w_run, f_run, failed = _model_runs(ev)
    if failed:
        return failed
    if not w_run["train_steps"]:
        return Judgement(NOT_REPLAYABLE, "the region runs no training step (no backward through the model)")

    def show(run):
        if run is None:
            return "no fix"
        if run["error"]:
            return "error"
        return f"{run['train_steps_in_eval_mode']} of {run['train_steps']} training steps in eval mode"

    base = dict(metric="training steps in eval mode", written=show(w_run), fixed=show(f_run), truth="0",
                written_value=float(w_run["train_steps_in_eval_mode"]),
                fixed_value=None if f_run is None or f_run["error"] else float(f_run["train_steps_in_eval_mode"]),
                truth_value=0.0)
    if not w_run["train_steps_in_eval_mode"]:
        return Judgement(NOT_REPRODUCED, "every training step runs in training mode as written", **base)
    if f_run is not None and not f_run["error"] and not f_run["train_steps_in_eval_mode"]:
        return Judgement(CONFIRMED, "after the first evaluation the model trains in eval mode as written; "
                                    "every training step runs in training mode after the fix", **base)
    if f_run is None:
        return Judgement(CONFIRMED, "after the first evaluation the model trains in eval mode", **base)
    return Judgement(NOT_REPRODUCED, "training steps still run in eval mode after the fix", **base)


def judge_graph(ev: Evidence) -> Judgement:
    """A running total that keeps every batch's autograd graph: the flagged name holds a
    tensor with a grad_fn after the region as written, a plain number after the fix."""
    w_run, f_run, failed = _model_runs(ev)
    if failed:
        return failed
    names = ", ".join(f"`{n}`" for n in sorted(ev.flagged)) or "the total"

    def show(run):
        if run is None:
            return "no fix"
        return "error" if run["error"] else ("holds a grad_fn" if any(run["graphs"]) else "no graph")

    held = any(w_run["graphs"])
    base = dict(metric=f"autograd graph kept by {names}", written=show(w_run), fixed=show(f_run), truth="no graph",
                written_value=float(held), fixed_value=None if f_run is None or f_run["error"]
                else float(any(f_run["graphs"])), truth_value=0.0)
    if not held:
        return Judgement(NOT_REPRODUCED, f"{names} holds no autograd graph as written", **base)
    if f_run is not None and not f_run["error"] and not any(f_run["graphs"]):
        return Judgement(CONFIRMED, f"{names} keeps every batch's autograd graph alive as written (a tensor with "
                                    "a grad_fn); after the fix it is a plain number", **base)
    if f_run is None:
        return Judgement(CONFIRMED, f"{names} keeps every batch's autograd graph alive", **base)
    return Judgement(NOT_REPRODUCED, f"{names} still holds an autograd graph after the fix", **base)


PROBES: dict[str, Probe] = {
    "metric": Probe("metric", "region", judge_metric),
    "mode": Probe("mode", "region", judge_mode),
    "grad": Probe("grad", "region", judge_grad),
    "overlap": Probe("overlap", "datasets", judge_overlap),
    "params": Probe("params", "region", judge_params),
    "train_mode": Probe("train_mode", "region", judge_train_mode),
    "graph": Probe("graph", "region", judge_graph),
    # A name the evaluation loop reads but only training defined: its stand-in is the
    # model's output on another (training) batch; judged as a metric.
    "stale": Probe("stale", "region", judge_metric),
    "eval_passes": Probe("eval_passes", "module", judge_eval_passes),
    "logged": Probe("logged", "logged", judge_logged),
    "average": Probe("average", "average", judge_average),
}


def probes_of(rule_cls) -> tuple[Probe, ...]:
    """The probes a rule class opted into through `replay_probe`."""
    names = getattr(rule_cls, "replay_probe", None)
    if not names:
        return ()
    if isinstance(names, str):
        names = (names,)
    return tuple(PROBES[n] for n in names if n in PROBES)
