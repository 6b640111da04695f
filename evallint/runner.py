"""Run a check (or fix) over many files: parallel workers, cache, diffs, writes.

No analysis here: each file goes through `engine.lint_source` / `fixer.fix_source`.
One bad file never stops the others.
"""
from __future__ import annotations

import os
import signal
import stat
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .cache import ResultCache
from .config import Settings
from .diagnostic import Diagnostic
from .engine import FileResult, lint_source, unreadable_result
from .fastparse import parse_alone
from .fixer import fix_source, verify_offered_fixes
from .gcpolicy import one_collection_per_file
from .project_run import ProjectPlan, drop_overturned, plan_project
from .registry import load_rules
from .source import Source, SourceError
from .suppress import unknown_suppressions
from .textdiff import source_diff
from .writer import write_atomic

# Below this many files per worker, process start-up costs more than it saves.
_MIN_FILES_PER_WORKER = 4
_PARENT_POLL_S = 0.5


@dataclass(frozen=True)
class RunOptions:
    fix: bool = False
    unsafe_fixes: bool = False
    diff: bool = False
    jobs: int = 0            # 0: all cores
    use_cache: bool = True
    keep_sources: bool = False
    cache_dir: Optional[str] = None   # None: `.evallint_cache` in settings.root


Progress = Callable[[int, int], None]   # (files done, files in all)


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
    new_bytes: Optional[bytes] = None  # the same, in the file's encoding
    warnings: list[str] = field(default_factory=list)   # e.g. a `# noqa` naming no known code
    summary: Optional[dict] = None   # the module's project summary (project runs)
    from_cache: bool = False         # the result was read from the cache, not computed


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
    def warnings(self) -> list[str]:
        return [w for f in self.files for w in f.warnings]

    @property
    def fixed(self) -> int:
        return sum(f.fixed for f in self.files)

    @property
    def from_cache(self) -> int:
        """How many files' results came from the cache (the rest were analysed)."""
        return sum(f.from_cache for f in self.files)

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
        out.warnings += fixed.refused
        if fixed.changed:
            out.fixed, out.fixed_codes = fixed.applied, fixed.applied_codes
            out.new_text = fixed.source.serialized()
            out.new_bytes = fixed.source.to_bytes()
            if options.diff:
                # Nothing is written: `fixed` counts what would be fixed, and the
                # findings are those that would remain.
                out.diff = source_diff(source, fixed.source)
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
        result: FileResult = lint_source(source, settings, rules, project=project, keep_tree=True)
        out.warnings += verify_offered_fixes(source, result, settings, rules)
        result.tree = None
        out.diagnostics, out.errors, out.summary = result.diagnostics, result.errors, result.summary
        final_source = source
    if out.diagnostics and options.keep_sources:
        out.source = final_source
    return out


def _check_file(args) -> FileOutcome:
    with one_collection_per_file():
        return _check_file_now(args)


def _check_file_now(args) -> FileOutcome:
    path, settings, options, cache, project = args
    try:
        data = _read_regular(path)
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
            out = FileOutcome(path, hit, summary=summary, from_cache=True)
            # Decode only when needed: to show the findings' lines, or to check the
            # suppression comments (warnings are not cached).
            if (hit and options.keep_sources) or b"noqa" in data or b"evallint" in data:
                try:
                    source = Source.from_bytes(data, path)
                except SourceError:
                    return out
                out.warnings = unknown_suppressions(source)
                if hit and options.keep_sources:
                    out.source = source
            return out
    out = _process_bytes(data, path, settings, options, write=True, project=project)
    if key is not None and not out.errors:
        cache.put(key, out.diagnostics, out.summary)
    return out


def _read_regular(path: str) -> bytes:
    # O_NONBLOCK: a FIFO named on the command line must not block the run (discover
    # skips non-regular files; this guards a file replaced by one since).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            return f.read()
    finally:
        if fd >= 0:
            os.close(fd)


def _process_bytes(data: bytes, path: str, settings: Settings, options: RunOptions, write: bool,
                   project=None) -> FileOutcome:
    try:
        source = Source.from_bytes(data, path)
    except SourceError as exc:
        return FileOutcome(path, unreadable_result(path, str(exc), settings, where=exc).diagnostics)
    try:
        out = process_source(source, settings, options, write=write, project=project)
    except RecursionError:
        return FileOutcome(path, errors=[f"{path}: the code nests too deeply to be analysed"])
    except Exception as exc:  # never let one file take the run down
        return FileOutcome(path, errors=[f"{path}: internal error: {exc!r}"])
    out.warnings = unknown_suppressions(source) + out.warnings
    return out


def run_paths(files: list[str], settings: Settings, options: RunOptions,
              progress: Optional[Progress] = None) -> RunResult:
    """Check every file. Ctrl-C (KeyboardInterrupt) stops the workers at once and
    propagates; a file being written is either old or new (atomic writes)."""
    cache = None
    if options.use_cache:
        rules = load_rules()
        rules_key = ",".join(f"{r.code}:{r.__module__}" for r in rules.all())
        folder = Path(options.cache_dir) if options.cache_dir else None
        cache = ResultCache(settings.root, settings.fingerprint(), rules_key, folder)
    report = progress or (lambda done, total: None)
    jobs = options.jobs or os.cpu_count() or 1
    jobs = max(1, min(jobs, len(files) // _MIN_FILES_PER_WORKER))
    plan = plan_project(files, settings)
    if plan is None:
        work = [(f, settings, options, cache, None) for f in files]
        return RunResult(_run_work(work, jobs, report=report))
    return RunResult(_run_project(plan, settings, options, cache, jobs, report))


def _run_project(plan: ProjectPlan, settings: Settings, options: RunOptions, cache, jobs: int,
                 report: Progress) -> list[FileOutcome]:
    """Waves, imported modules first; then findings made under assumptions about
    callers are checked against the callers' summaries. Fixes are applied in a second
    run that knows every caller (a fix must not answer a finding that goes)."""
    fixing = options.fix or options.diff
    check_options = RunOptions(jobs=options.jobs, use_cache=options.use_cache,
                               keep_sources=options.keep_sources and not fixing, cache_dir=options.cache_dir)
    total = len(plan.files) * (2 if fixing else 1)
    summaries: dict[str, dict] = {}
    outcomes: dict[int, FileOutcome] = {}
    pool = _new_pool(jobs) if jobs > 1 else None  # one pool for every wave
    try:
        for wave in plan.waves:
            work = [(plan.files[i], settings, check_options, cache, plan.context(i, summaries)) for i in wave]
            for i, out in zip(wave, _run_work(work, jobs, pool, report, len(outcomes), total)):
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
        return _run_work(work, jobs, pool, report, len(plan.files), total)
    except BaseException:  # Ctrl-C: do not wait for the queued files
        if pool is not None:
            _kill_workers(pool)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown()


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)


def _run_work(work: list, jobs: int, pool: Optional[ProcessPoolExecutor] = None,
              report: Optional[Progress] = None, done_before: int = 0,
              total: Optional[int] = None) -> list[FileOutcome]:
    report = report or (lambda done, total: None)
    total = len(work) if total is None else total
    if jobs == 1 or len(work) < 2:
        results = []
        for w in work:
            results.append(_check_file(w))
            report(done_before + len(results), total)
        return results
    outcomes: dict[int, FileOutcome] = {}
    own = pool is None
    if own:
        pool = _new_pool(min(jobs, len(work)))
    try:
        futures = {}
        for chunk in _chunks(work, jobs):
            try:
                futures[pool.submit(_check_chunk, [work[i] for i in chunk])] = chunk
            except BrokenProcessPool:
                break  # an earlier wave's worker died: the rest is checked in isolation below
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    outcomes.update(zip(futures[future], future.result()))
                except BrokenProcessPool:
                    pass  # a worker died (out of memory, a native crash): isolate below
            report(done_before + len(outcomes), total)
    except BaseException:  # Ctrl-C: do not wait for the queued files
        if own:
            _kill_workers(pool)
        raise
    if own:
        pool.shutdown(wait=True)
    for i, w in enumerate(work):
        if i not in outcomes:
            outcomes[i] = _check_isolated(w)
    return [outcomes[i] for i in range(len(work))]


def _check_chunk(items: list) -> list[FileOutcome]:
    return [_check_file(w) for w in items]


# Chunk sizes shrink as the work runs out ("guided" scheduling): each chunk is about
# 1/(jobs*_CHUNK_SHARE) of the bytes still to hand out, never less than
# 1/(jobs*_MIN_CHUNK_SHARE) of all of them. The first chunks are big (few pickles of the
# settings), the last ones small, so the workers finish within a small file of each other.
_CHUNK_SHARE = 4
_MIN_CHUNK_SHARE = 64


def _chunks(work: list, jobs: int) -> list[list[int]]:
    """Indices of `work` in chunks, the biggest files first (a big file handed out last
    would leave the other workers idle), chunk sizes shrinking towards the end."""
    sizes = []
    for w in work:
        try:
            sizes.append(os.path.getsize(w[0]))
        except OSError:
            sizes.append(0)
    order = sorted(range(len(work)), key=lambda i: -sizes[i])
    remaining = sum(sizes)
    floor = max(1, remaining // (jobs * _MIN_CHUNK_SHARE))
    chunks, current, filled = [], [], 0
    budget = max(floor, remaining // (jobs * _CHUNK_SHARE))
    for i in order:
        if current and filled + sizes[i] > budget:
            chunks.append(current)
            remaining -= filled
            current, filled = [], 0
            budget = max(floor, remaining // (jobs * _CHUNK_SHARE))
        current.append(i)
        filled += sizes[i]
    if current:
        chunks.append(current)
    return chunks


def _ignore_sigint() -> None:
    """Worker set-up. Ctrl-C reaches the whole process group: the parent alone decides
    to stop, so workers print no traceback of their own. A worker whose parent died
    (killed with SIGKILL) exits instead of lingering, or fixing queued files."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parse_alone()  # a worker analyses on one thread
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(_PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="evallint-parent-watch", daemon=True).start()


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.kill()
        except (OSError, AttributeError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)


def _check_isolated(work_item) -> FileOutcome:
    """Check one file in its own process, so a crash names the file and spares the rest."""
    path = work_item[0]
    try:
        with ProcessPoolExecutor(max_workers=1, initializer=_ignore_sigint) as pool:
            return pool.submit(_check_file, work_item).result()
    except BrokenProcessPool:
        return FileOutcome(path, errors=[f"{path}: the analysis process crashed on this file "
                                         "(out of memory or a native parser crash); the other files were checked"])


def run_bytes(data: bytes, filename: str, settings: Settings, options: RunOptions) -> RunResult:
    """Check (or fix) bytes given on stdin, decoded like a file of that name: an
    undecodable input is EL001, not a traceback."""
    out = _process_bytes(data, filename, settings, options, write=False)
    if out.new_bytes is None:
        out.new_bytes = data  # nothing fixed: stdin comes back unchanged, byte for byte
    return RunResult([out])


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
