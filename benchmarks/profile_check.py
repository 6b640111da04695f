"""Profile `evallint check` on a corpus, inside the big-stack thread where the analysis runs.

    python benchmarks/profile_check.py CORPUS_DIR ... [--limit 80] [--sort tottime] [--top 40]

cProfile only sees the thread it is enabled in: the profiler is switched on inside
`deepstack`'s worker thread, around each file's `lint_source`, and the parse is timed
apart so the report says what the rules and facts cost on top of it.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="+")
    ap.add_argument("--limit", type=int, default=0, help="profile only the first N files (0: all)")
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--runner", action="store_true",
                    help="profile what the runner does per file (reading, the check, fix verification)")
    args = ap.parse_args(argv)

    import libcst as cst

    from benchmarks.perf import python_files
    from evallint.config import load_settings
    from evallint.deepstack import call_with_big_stack
    from evallint.engine import _lint_source
    from evallint.registry import load_rules
    from evallint.source import Source

    paths = python_files(args.corpus)
    if args.limit:
        paths = paths[: args.limit]
    rules = load_rules()
    settings = load_settings(Path(args.corpus[0]), rules=rules)
    sources = [Source.from_bytes(Path(p).read_bytes(), p) for p in paths]
    profiler = cProfile.Profile()

    from evallint.runner import RunOptions, _check_file

    options = RunOptions(use_cache=False)

    def lint_all() -> float:
        start = time.perf_counter()
        profiler.enable()
        if args.runner:
            for p in paths:
                _check_file((p, settings, options, None, None))
        else:
            for s in sources:
                _lint_source(s, settings, rules, True)
        profiler.disable()
        return time.perf_counter() - start

    def parse_all() -> float:
        start = time.perf_counter()
        for s in sources:
            cst.parse_module(s.text)
        return time.perf_counter() - start

    parse = call_with_big_stack(parse_all)
    lint = call_with_big_stack(lint_all)
    print(f"{len(paths)} files: parse {parse:.2f} s; lint (profiled, parse included) {lint:.2f} s")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
