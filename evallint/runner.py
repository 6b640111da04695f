"""Run a check (or fix) over many files: parallel workers, cache, diffs, writes.

No analysis here: each file goes through `engine.lint_source` / `fixer.fix_source`.
One bad file never stops the others.
"""
from __future__ import annotations

import difflib
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .cache import ResultCache
from .config import Settings
from .diagnostic import Diagnostic
from .engine import FileResult, lint_source, unreadable_result
from .fixer import fix_source
from .project_run import ProjectPlan, drop_overturned, plan_project
from .registry import load_rules
from .source import Source, SourceError
from .writer import write_atomic

# Below this many files per worker, process start-up costs more than it saves.
_MIN_FILES_PER_WORKER = 4


@dataclass(frozen=True)
class RunOptions:
    fix: bool = False
    unsafe_fixes: bool = False
    diff: bool = False
    jobs: int = 0            # 0: all cores
    use_cache: bool = True
    keep_sources: bool = False


@dataclass
class FileOutcome:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fixed: int = 0
    fixed_codes: list[str] = field(default_factory=list)
    diff: str = ""
    source: Optional[Source] = None
    new_text: Optional[str] = None   # fixed text (stdin mode)
    summary: Optional[dict] = None   # the module's project summary (project runs)


@dataclass
class RunResult:
    files: list[FileOutcome]

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for f in self.files for d in f.diagnostics]

    @property
    def errors(self) -> list[str]:
        return [e for f in self.files for e in f.errors]

    @property
    def fixed(self) -> int:
        return sum(f.fixed for f in self.files)

    @property
    def sources(self) -> dict:
        return {f.path: f.source for f in self.files if f.source is not None}


def process_source(source: Source, settings: Settings, options: RunOptions, write: bool,
                   project=None) -> FileOutcome:
    rules = load_rules()
    out = FileOutcome(source.path)
    if options.fix or options.diff:
        unsafe = options.unsafe_fixes or settings.unsafe_fixes
        fixed = fix_source(source, settings, rules, unsafe, project)
        out.diagnostics, out.errors = fixed.diagnostics, fixed.errors
        if fixed.changed:
            out.fixed, out.fixed_codes = fixed.applied, fixed.applied_codes
            out.new_text = fixed.source.serialized()
            if options.diff:
                out.diff = _unified_diff(source, fixed.source)
                out.diagnostics = lint_source(source, settings, rules, project=project).diagnostics
                out.fixed = 0
            elif write:
                if not fixed.source.can_write_layout():
                    out.errors.append(f"{source.path}: not written: the notebook's JSON layout cannot be "
                                      "reproduced exactly (fixes were not applied)")
                    out.fixed = 0
                else:
                    try:
                        write_atomic(source.path, fixed.source.to_bytes())
                    except OSError as exc:
                        out.errors.append(f"{source.path}: cannot write the fixed file: {exc}")
                        out.fixed = 0
        final_source = fixed.source if (fixed.changed and not options.diff) else source
    else:
        result: FileResult = lint_source(source, settings, rules, project=project)
        out.diagnostics, out.errors, out.summary = result.diagnostics, result.errors, result.summary
        final_source = source
    if out.diagnostics and options.keep_sources:
        out.source = final_source
    return out


def _unified_diff(old: Source, new: Source) -> str:
    if old.notebook is not None:
        a, b = old.notebook.raw, new.notebook.raw
    else:
        a, b = old.text, new.text
    return "".join(difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                        fromfile=f"a/{old.path}", tofile=f"b/{old.path}"))


def _check_file(args) -> FileOutcome:
    path, settings, options, cache, project = args
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        r = unreadable_result(path, f"cannot read file: {exc.strerror or exc}", settings)
        return FileOutcome(path, r.diagnostics)
    key = None
    if cache is not None and not (options.fix or options.diff):
        # A file's result depends on the summaries of the modules it may read.
        key = cache.key(path, data, project.fingerprint() if project is not None else "")
        entry = cache.get_entry(key)
        if entry is not None:
            hit, summary = entry
            out = FileOutcome(path, hit, summary=summary)
            if hit and options.keep_sources:
                try:
                    out.source = Source.from_bytes(data, path)
                except SourceError:
                    pass
            return out
    try:
        source = Source.from_bytes(data, path)
    except SourceError as exc:
        r = unreadable_result(path, str(exc), settings)
        return FileOutcome(path, r.diagnostics)
    try:
        out = process_source(source, settings, options, write=True, project=project)
    except RecursionError:
        return FileOutcome(path, errors=[f"{path}: the code nests too deeply to be analysed"])
    except Exception as exc:  # never let one file take the run down
        return FileOutcome(path, errors=[f"{path}: internal error: {exc!r}"])
    if key is not None and not out.errors:
        cache.put(key, out.diagnostics, out.summary)
    return out


def run_paths(files: list[str], settings: Settings, options: RunOptions) -> RunResult:
    cache = None
    if options.use_cache:
        rules = load_rules()
        rules_key = ",".join(f"{r.code}:{r.__module__}" for r in rules.all())
        cache = ResultCache(settings.root, settings.fingerprint(), rules_key)
    jobs = options.jobs or os.cpu_count() or 1
    jobs = max(1, min(jobs, len(files) // _MIN_FILES_PER_WORKER))
    plan = plan_project(files, settings)
    if plan is None:
        work = [(f, settings, options, cache, None) for f in files]
        return RunResult(_run_work(work, jobs))
    return RunResult(_run_project(plan, settings, options, cache, jobs))


def _run_project(plan: ProjectPlan, settings: Settings, options: RunOptions, cache, jobs: int) -> list[FileOutcome]:
    """Waves, imported modules first; then findings made under assumptions about
    callers are checked against the callers' summaries. Fixes are applied in a second
    run that knows every caller (a fix must not answer a finding that goes)."""
    fixing = options.fix or options.diff
    check_options = RunOptions(jobs=options.jobs, use_cache=options.use_cache,
                               keep_sources=options.keep_sources and not fixing)
    summaries: dict[str, dict] = {}
    outcomes: dict[int, FileOutcome] = {}
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None  # one pool for every wave
    try:
        for wave in plan.waves:
            work = [(plan.files[i], settings, check_options, cache, plan.context(i, summaries)) for i in wave]
            for i, out in zip(wave, _run_work(work, jobs, pool)):
                outcomes[i] = out
                if out.summary is not None:
                    summaries[plan.keys[i]] = out.summary
        ordered = [outcomes[i] for i in range(len(plan.files))]
        if not fixing:
            drop_overturned(ordered, summaries)
            return ordered
        from .facts.project import caller_index
        callers = caller_index(summaries)
        work = [(f, settings, options, None, plan.context(i, summaries, callers)) for i, f in enumerate(plan.files)]
        return _run_work(work, jobs, pool)
    finally:
        if pool is not None:
            pool.shutdown()


def _run_work(work: list, jobs: int, pool: Optional[ProcessPoolExecutor] = None) -> list[FileOutcome]:
    if jobs == 1 or len(work) < 2:
        return [_check_file(w) for w in work]
    outcomes: dict[int, FileOutcome] = {}
    own = pool is None
    if own:
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(work)))
    try:
        futures = {}
        for i, w in enumerate(work):
            try:
                futures[pool.submit(_check_file, w)] = i
            except BrokenProcessPool:
                break  # an earlier wave's worker died: the rest is checked in isolation below
        for future, i in futures.items():
            try:
                outcomes[i] = future.result()
            except BrokenProcessPool:
                pass  # a worker died (out of memory, a native crash): isolate below
    finally:
        if own:
            pool.shutdown()
    for i, w in enumerate(work):
        if i not in outcomes:
            outcomes[i] = _check_isolated(w)
    return [outcomes[i] for i in range(len(work))]


def _check_isolated(work_item) -> FileOutcome:
    """Check one file in its own process, so a crash names the file and spares the rest."""
    path = work_item[0]
    try:
        with ProcessPoolExecutor(max_workers=1) as pool:
            return pool.submit(_check_file, work_item).result()
    except BrokenProcessPool:
        return FileOutcome(path, errors=[f"{path}: the analysis process crashed on this file "
                                         "(out of memory or a native parser crash); the other files were checked"])


def run_text(text: str, filename: str, settings: Settings, options: RunOptions) -> RunResult:
    """Check (or fix) text given on stdin, named `filename` for config and output."""
    try:
        source = Source.from_text(text, filename, notebook=filename.endswith(".ipynb"))
    except SourceError as exc:
        return RunResult([FileOutcome(filename, unreadable_result(filename, str(exc), settings).diagnostics,
                                      new_text=text)])
    out = process_source(source, settings, options, write=False)
    if out.new_text is None:
        out.new_text = text  # nothing fixed: stdin comes back unchanged
    return RunResult([out])
