"""Speed and memory of evallint against the floor: a bare libcst parse of the same files.

    python benchmarks/bench.py [FOLDER ...] [--rounds N]

Default corpus: the shipped fixtures (realistic training scripts). Pass more folders,
e.g. the standard library (`python -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])"`).
All figures are measured in this run; ratios are against the bare parse (= 1.00).
"""
from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from pathlib import Path

import libcst as cst

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evallint.config import Settings  # noqa: E402
from evallint.discover import discover  # noqa: E402
from evallint.engine import lint_source  # noqa: E402
from evallint.registry import load_rules  # noqa: E402
from evallint.runner import RunOptions, run_paths  # noqa: E402
from evallint.source import Source, SourceError  # noqa: E402


def load_corpus(folders: list[str], settings: Settings) -> list[Source]:
    sources = []
    for f in discover(folders, settings):
        try:
            s = Source.read(f)
        except SourceError:
            continue
        try:
            cst.parse_module(s.text)
        except Exception:
            continue  # the floor must be measurable on every file of the corpus
        sources.append(s)
    return sources


def timed(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def corpus_report(name: str, folders: list[str], rounds: int) -> None:
    rules = load_rules()
    settings = Settings(enabled=frozenset(rules.codes()), root=Path.cwd())
    sources = load_corpus(folders, settings)
    if not sources:
        print(f"{name}: no parsable files")
        return
    size = sum(len(s.text) for s in sources)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))

    def bare_parse() -> None:
        for s in sources:  # each tree is dropped at once, as evallint drops it
            cst.parse_module(s.text)

    parse = timed(bare_parse, rounds)
    def lint_all(prefilter: bool) -> None:
        for s in sources:
            lint_source(s, settings, rules, prefilter=prefilter)

    full = timed(lambda: lint_all(False), rounds)
    pre = timed(lambda: lint_all(True), rounds)
    files = [s.path for s in sources]
    opts1 = RunOptions(jobs=1, use_cache=False)
    optsn = RunOptions(jobs=0, use_cache=False)
    cli1 = timed(lambda: run_paths(files, settings, opts1), rounds)
    clin = timed(lambda: run_paths(files, settings, optsn), rounds)
    findings = sum(len(lint_source(s, settings, rules).diagnostics) for s in sources)

    print(f"\n== {name}: {len(sources)} files, {size / 1e6:.2f} MB of source, {findings} findings "
          f"(best of {rounds}; {os.cpu_count()} cores)")
    rows = [
        ("bare libcst.parse_module (floor)", parse),
        ("evallint, every file parsed and analysed", full),
        ("evallint, with the token prefilter", pre),
        ("evallint run, files read, --jobs 1", cli1),
        (f"evallint run, files read, --jobs {os.cpu_count()} (default)", clin),
    ]
    for label, t in rows:
        print(f"  {label:<52} {t:8.3f} s   {t / parse:5.2f}x parse")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="*")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    corpus_report("fixtures (realistic training scripts)", [str(REPO / "fixtures")], args.rounds)
    for folder in args.folders:
        corpus_report(folder, [folder], args.rounds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
