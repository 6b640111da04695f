"""The module probe: run the file's own `nn.Module` class (its definitions only) in
evaluation mode, twice on the same input, as written and fixed.

A model in `eval()` mode is deterministic: two forward passes on one input agree. A
functional dropout that ignores the mode (`F.dropout(x, p)`) makes them differ. The
parent builds the job from the file's text; `modules_child.run_module` runs it in the
child (a module apart, so that the child never imports the cutter and libcst).
"""
from __future__ import annotations

from typing import Optional

from .lightning import allowed_imports, definitions_code, enclosing_method, parse_text
from .region import RegionError


def module_job(text: str, line: int, fixed_text: Optional[str]) -> dict:
    tree = parse_text(text)
    cls, _ = enclosing_method(tree, line)
    if cls is None:
        raise RegionError("the finding is not in a class defined at the top of the file")
    fixed = None
    if fixed_text is not None:
        try:
            fixed = definitions_code(fixed_text, parse_text(fixed_text))
        except RegionError:
            fixed = None
    return {"kind": "module", "versions": {"written": definitions_code(text, tree), "fixed": fixed},
            "imports": allowed_imports(tree), "class": cls.name}


def judge_eval_passes(ev):
    from .probes import Judgement
    from .report import CONFIRMED, NOT_REPLAYABLE, NOT_REPRODUCED

    if "error" in ev.result:
        return Judgement(NOT_REPLAYABLE, f"the replay failed: {ev.result['error']}")
    w = ev.result["versions"].get("written")
    f = ev.result["versions"].get("fixed")
    if w is None or w.get("error"):
        return Judgement(NOT_REPLAYABLE, f"the module could not run: {w and w.get('error')}")

    def show(r):
        if r is None:
            return "no fix"
        if r.get("error"):
            return "error"
        return "passes agree" if not r["max_diff"] else f"passes differ (max |Δ| {r['max_diff']:.3g})"

    fixed_diff = None if f is None or f.get("error") else f["max_diff"]
    base = dict(metric=f"two eval-mode passes, input {tuple(w['input'])}", written=show(w), fixed=show(f),
                truth="passes agree", written_value=w["max_diff"], fixed_value=fixed_diff, truth_value=0.0)
    if not w["max_diff"]:
        return Judgement(NOT_REPRODUCED, "two passes in eval mode agree as written", **base)
    if fixed_diff == 0.0:
        return Judgement(CONFIRMED, "after model.eval() two passes on the same input differ as written (dropout "
                                    "still drops) and agree after the fix", **base)
    if f is None:
        return Judgement(CONFIRMED, "after model.eval() two passes on the same input differ", **base)
    return Judgement(NOT_REPRODUCED, "the passes still differ after the fix", **base)
