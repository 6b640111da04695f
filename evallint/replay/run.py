"""Replay a file's findings: prepare one job per finding, run them all in one child,
judge each with its rule's probe."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from ..runtime._torch import INSTALL_HINT, torch_available
from .child import Child
from .datasets import build_datasets_code
from .positions import edit_spans, map_position, virtual_line
from .probes import Evidence, Probe, probes_of
from .region import Region, RegionError, anchor_start, cut_at, cut_region
from .report import NOT_REPLAYABLE, FindingReplay, ReplayReport
from .scope import foreign_framework, needs_device, unusable_file
from .stale import stale_roles, stale_world
from .world import world_for
from .worldfacts import arith_regions, world_from_setup

DEFAULT_TIME_LIMIT = 20.0  # seconds per pass of one version of one region
DEVICES = ("auto", "cpu", "cuda")
# Probes about code that trains: their regions keep the training steps, with every
# `range` loop cut to a few iterations.
_TRAINING_PROBES = ("params", "train_mode")
_MAX_TRAINING_ITERATIONS = 3


@dataclass
class _Prepared:
    diag: Any
    probes: tuple[Probe, ...]
    job: Optional[dict] = None
    written: Optional[Region] = None
    fixed: Optional[Region] = None
    together: Optional[Region] = None  # with the fixes of the findings that share its metric
    partners: tuple[str, ...] = ()      # those findings' codes
    neighbours: tuple[str, ...] = ()    # "EL104 (line 43)": the other findings in the same region
    skip: Optional[str] = None  # why it is not replayable


def run_replay(path: str, select: Optional[set[str]], device: str, seed: int, settings, rules,
               time_limit: float = DEFAULT_TIME_LIMIT) -> ReplayReport:
    """Lint `path`, then replay its findings (those in `select`, all when None)."""
    if not torch_available():
        return ReplayReport(path=path, seed=seed, error=f"replay needs PyTorch, which is not installed; {INSTALL_HINT}")
    child = Child()  # imports torch on another core while this process lints and cuts
    try:
        from ..engine import lint_path  # the engine is only needed here; keeps imports light

        result = lint_path(path, settings, rules)
        unusable = unusable_file(result.diagnostics, rules)
        if unusable:  # as `check` reports it: a file that cannot be read or parsed has nothing to run
            return ReplayReport(path=path, seed=seed, error=unusable)
        if result.source is None:
            why = "; ".join(d.message for d in result.diagnostics) or "the file cannot be read"
            return ReplayReport(path=path, seed=seed, error=why)
        diags = [d for d in result.diagnostics if _selected(d.code, select)]
        return replay_sources([(result.source, diags)], rules, device, seed, time_limit, child=child)[0]
    finally:
        child.close()


def _selected(code: str, select: Optional[Iterable[str]]) -> bool:
    return select is None or any(code.startswith(s) for s in select)


def replay_diagnostics(source, diagnostics, rules, device: str = "auto", seed: int = 0,
                       time_limit: float = DEFAULT_TIME_LIMIT) -> ReplayReport:
    """Replay given diagnostics of one Source."""
    return replay_sources([(source, diagnostics)], rules, device, seed, time_limit)[0]


def replay_sources(items, rules, device: str = "auto", seed: int = 0,
                   time_limit: float = DEFAULT_TIME_LIMIT, child: Optional[Child] = None) -> list[ReplayReport]:
    """Replay the diagnostics of several Sources with one child process (torch starts once);
    `child`, one already started, is used if there is anything to run."""
    started = time.perf_counter()
    items = list(items)
    paths = [getattr(src, "path", "<source>") for src, _ in items]

    def failed(error: str, torch_version=None) -> list[ReplayReport]:
        return [ReplayReport(path=p, seed=seed, error=error, torch_version=torch_version,
                             seconds=time.perf_counter() - started) for p in paths]

    if device not in DEVICES:
        return failed(f"unknown device {device!r}; use auto, cpu or cuda")
    if not torch_available():
        return failed(f"replay needs PyTorch, which is not installed; {INSTALL_HINT}")
    prepared: list[list[_Prepared]] = []
    jobs = []
    for src, diags in items:
        group = [_prepare(src, d, _rule(rules, d.code)) for d in sorted(diags, key=lambda d: d.sort_key)]
        _share_metrics(src, group)
        for p in group:
            if p.job is not None:
                p.job["id"] = len(jobs)
                jobs.append(p.job)
        prepared.append(group)
    header: dict = {}
    results: dict = {}
    notes: list[str] = []
    # An explicit --device cuda is checked even with nothing to run: the user asked for it.
    if jobs or device == "cuda":
        out = (child or Child()).run(jobs, device, seed, time_limit)
        header, results = out.header, out.results
        if header.get("fatal") == "cuda-unavailable":
            return failed(f"--device cuda was requested but torch {header.get('torch')} sees no CUDA GPU; "
                          "use --device cpu (or auto, which falls back to the CPU)", header.get("torch"))
        if not header:
            tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
            return failed(f"the replay child process failed: {tail[0]}")
        if out.timed_out:
            notes.append("the replay child ran out of time; unfinished findings are marked")
    elapsed = time.perf_counter() - started
    return [ReplayReport(path=path, device=header.get("device"), torch_version=header.get("torch"),
                         findings=tuple(_judge(p, results) for p in group), seconds=elapsed, seed=seed,
                         notes=tuple(notes))
            for path, group in zip(paths, prepared)]


def cli_replay(path: str, select, device: str, seed: int, fmt: str, settings, rules) -> int:
    """What `evallint replay` does: run, print, return the exit status."""
    import click

    from .render import render

    report = run_replay(path, select, device, seed, settings, rules)
    if report.error and fmt == "text":
        click.echo(f"evallint replay: {report.error}", err=True)
    else:
        click.echo(render(report, fmt), nl=False)
    return report.exit_code


def _rule(rules, code: str):
    getter = getattr(rules, "get", None)
    return getter(code) if getter else None


def _prepare(source, diag, rule_cls) -> _Prepared:
    probes = probes_of(rule_cls) if rule_cls is not None else ()
    p = _Prepared(diag, probes)
    foreign = foreign_framework(source, diag)
    if foreign:
        p.skip = foreign
        return p
    if not probes:
        p.skip = f"{diag.code} has no replay probe"
        return p
    if getattr(source, "kind", "python") == "notebook" and not hasattr(source, "to_virtual"):
        p.skip = "notebooks are not supported"
        return p
    text = source.text
    line = virtual_line(source, diag.cell, diag.line)
    fixed_source = source.apply_edits(diag.fix.edits) if diag.fix else None
    try:
        if probes[0].job == "datasets":
            p.job = _datasets_job(source, text, line, diag, fixed_source)
        elif probes[0].job == "module":
            from .modules import module_job

            p.job = module_job(text, line, fixed_source.text if fixed_source is not None else None)
        elif probes[0].job in ("logged", "average"):
            p.job = _metrics_job(probes[0].job, source, text, line, diag, fixed_source)
        else:
            p.job = _region_job(p, source, text, line, diag, fixed_source)
    except RegionError as exc:
        p.skip = str(exc)
    except RecursionError:
        p.skip = "the code nests too deeply to cut"
    return p


def _fixed_position(source, text: str, fixed_source, diag, pos: tuple[int, int]) -> tuple[int, int]:
    return map_position(text, fixed_source.text, pos, edit_spans(source, diag.fix.edits))


def _region_job(p: _Prepared, source, text: str, line: int, diag, fixed_source) -> dict:
    # A finding about an evaluation loop that trains is replayed with its training steps.
    training = any(probe.name in _TRAINING_PROBES for probe in p.probes)
    given = stale_roles(text, line, diag) if any(probe.name == "stale" for probe in p.probes) else {}
    p.written = cut_region(text, line, training, diag.column, given)
    if fixed_source is not None:
        start, kind = anchor_start(text, line, training)
        at_line, at_col = _fixed_position(source, text, fixed_source, diag, (line, diag.column - 1))
        try:
            p.fixed = cut_at(fixed_source.text, _fixed_position(source, text, fixed_source, diag, start),
                             kind, p.written.flagged, (at_line, at_col + 1))
        except RegionError:
            p.fixed = None
    if p.probes[0].name == "metric":  # only what the finding's own value needs
        p.written, p.fixed = arith_regions(p.written), arith_regions(p.fixed) if p.fixed else None
    exprs: list[str] = []
    for region in (p.written, p.fixed):
        for s in (region.sinks if region else ()):
            if s.expr not in exprs:
                exprs.append(s.expr)
    roles = dict(p.written.roles)
    imports = list(p.written.imports)
    if p.fixed:
        roles.update(p.fixed.roles)
        imports += [i for i in p.fixed.imports if i not in imports]
    code = p.written.code + "\n" + (p.fixed.code if p.fixed else "")
    world = world_from_setup(world_for(code), code, source, roles, line)
    if given or "stale" in p.written.roles.values():
        world = stale_world(world)
    # A fresh module is in training mode; only the mode probe keeps that default, so that
    # the other probes see the rule's own bug and not a missing `model.eval()` as well.
    train_mode = any(probe.name in ("mode", "train_mode") for probe in p.probes)
    self_attrs = {**(p.written.self_attrs or {}), **((p.fixed.self_attrs if p.fixed else None) or {})}
    literals = {**p.written.literals, **(p.fixed.literals if p.fixed else {})}
    return {"self_attrs": self_attrs or None, "literals": literals,
            "max_iterations": _MAX_TRAINING_ITERATIONS if training else None, "kind": "region", "versions": {"written": p.written.code, "fixed": p.fixed.code if p.fixed else None},
            "imports": imports, "roles": roles, "world": world.to_json(), "sinks": exprs,
            "model_mode": "train" if train_mode else "eval",
            "graph_names": sorted(p.written.flagged) if any(pr.name == "graph" for pr in p.probes) else []}


def _share_metrics(source, group: list[_Prepared]) -> None:
    """Findings whose regions compute the same metric (one loop, one metric expression,
    e.g. EL101 and EL102 on neighbouring lines) are also replayed with all their fixes
    applied together, so that each one's share of the error can be told apart."""
    by_region: dict[int, list[_Prepared]] = {}
    for p in group:
        if p.written is not None:
            by_region.setdefault(p.written.anchor_line, []).append(p)
    for members in by_region.values():
        for p in members:
            deps = p.written.metric.deps if p.written.metric else frozenset()
            # only those whose flagged names the metric reads: they can hold its value off the truth
            p.neighbours = tuple(f"{q.diag.code} (line {q.diag.line})" for q in members
                                 if q is not p and q.written.flagged & deps)
    clusters: dict[tuple, list[_Prepared]] = {}
    for p in group:
        if p.job is None or p.job.get("kind") != "region" or p.written is None or p.written.metric is None \
                or p.diag.fix is None:
            continue
        clusters.setdefault((p.written.anchor_line, p.written.metric.expr), []).append(p)
    for members in clusters.values():
        if len(members) < 2:
            continue
        edits = [e for p in members for e in p.diag.fix.edits]
        text = source.text
        try:
            together = source.apply_edits(edits)
            start, kind = anchor_start(text, virtual_line(source, members[0].diag.cell, members[0].diag.line))
            region = cut_at(together.text, map_position(text, together.text, start, edit_spans(source, edits)),
                            kind, members[0].written.flagged)
        except (RegionError, ValueError):
            continue  # overlapping fixes, or a region the fixed code no longer has
        for p in members:
            p.together = region
            p.partners = tuple(q.diag.code for q in members if q is not p)
            p.job["versions"]["together"] = region.code
            for sink in region.sinks:
                if sink.expr not in p.job["sinks"]:
                    p.job["sinks"].append(sink.expr)
            for name, role in region.roles.items():
                p.job["roles"].setdefault(name, role)
            p.job["imports"] += [i for i in region.imports if i not in p.job["imports"]]


def _metrics_job(kind: str, source, text: str, line: int, diag, fixed_source) -> dict:
    from .lightning import average_job, logged_job

    fixed_text = fixed_source.text if fixed_source is not None else None
    if kind == "logged":
        job = logged_job(text, line, fixed_text)
    else:
        start = (line, diag.column - 1)
        pos = _fixed_position(source, text, fixed_source, diag, start) if fixed_source is not None else None
        job = average_job(text, line, diag.column, fixed_text, pos)
    job["line"] = line
    return job


def _datasets_job(source, text: str, line: int, diag, fixed_source) -> dict:
    written = build_datasets_code(text, line)
    fixed = None
    if fixed_source is not None:
        start = _fixed_position(source, text, fixed_source, diag, (line, 0))
        try:
            fixed = build_datasets_code(fixed_source.text, start[0])
        except RegionError:
            fixed = None
    return {"kind": "datasets", "versions": {"written": written.code, "fixed": fixed.code if fixed else None},
            "imports": list(written.imports), "max_items": 5000, "keyed": written.keyed}


def _judge(p: _Prepared, results: dict) -> FindingReplay:
    d = p.diag
    if p.skip is not None:
        return FindingReplay(d.code, d.line, NOT_REPLAYABLE, p.skip, cell=d.cell)
    result = results.get(p.job["id"])
    if result is None:
        return FindingReplay(d.code, d.line, NOT_REPLAYABLE, "the replay ran out of time", cell=d.cell)
    sinks = p.job.get("sinks", [])
    ev = Evidence(result=result, has_fix=d.fix is not None,
                  metric=p.written.metric if p.written else None,
                  metric_fixed=p.fixed.metric if p.fixed else None,
                  sink_index=_index(sinks, p.written), sink_index_fixed=_index(sinks, p.fixed),
                  alternatives=_alternatives(sinks, p.written, p.fixed),
                  metric_together=p.together.metric if p.together else None,
                  sink_index_together=_index(sinks, p.together), partners=p.partners, code=d.code,
                  neighbours=p.neighbours, flagged=p.written.flagged if p.written else frozenset())
    if d.fix is not None and p.job["versions"].get("fixed") is None:
        ev = Evidence(**{**ev.__dict__, "has_fix": False})
    judged = [(probe, probe.judge(ev)) for probe in p.probes]
    probe, j = next(((pr, jj) for pr, jj in judged if jj.verdict == "confirmed"), judged[0])
    reason = j.reason
    if j.verdict == NOT_REPLAYABLE:
        reason = needs_device(reason) or reason
    if d.fix is not None and p.job["versions"].get("fixed") is None:
        reason += " (the fixed code could not be cut)"
    return FindingReplay(d.code, d.line, j.verdict, reason, probe=probe.name, metric=j.metric, written=j.written,
                         fixed=j.fixed, truth=j.truth, written_value=j.written_value, fixed_value=j.fixed_value,
                         truth_value=j.truth_value, together=j.together, together_value=j.together_value,
                         seconds=result.get("seconds"), cell=d.cell)


def _alternatives(sinks: list[str], written: Optional[Region], fixed: Optional[Region]) -> tuple:
    """Other values the region computed, latest first, present in both versions."""
    if written is None:
        return ()
    fixed_exprs = {s.expr for s in fixed.sinks} if fixed else None
    return tuple((s, sinks.index(s.expr)) for s in reversed(written.sinks)
                 if s.expr in sinks and (fixed_exprs is None or s.expr in fixed_exprs))


def _index(sinks: list[str], region: Optional[Region]) -> Optional[int]:
    if region is None or region.metric is None:
        return None
    return sinks.index(region.metric.expr) if region.metric.expr in sinks else None
