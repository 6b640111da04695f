"""evallint at scale, as ratios against floors measured in the same run.

    python benchmarks/perf.py [CORPUS_DIR ...] [--repeats 5] [--only cold,jobs,warm,lsp,memory,replay]

Every figure is a ratio of two timings taken in this run, in alternation (paired), and
the median over the repeats is quoted; no absolute time is a target. The floors:
- cold: a bare `libcst.parse_module` of the same files in one process (the parse alone,
  no interpreter start), against a fresh `evallint check --no-cache --format json`
  process with every rule on;
- jobs: a plain pool of N processes that only parses, against one process;
- warm: the cold run of the same command;
- lsp: milliseconds from `didChange` to `publishDiagnostics` on a 1,000-line script
  (warm server), with the parse of that script for scale, for two edits: a comment
  appended at the end, and `=` <-> `+=` on an accumulator in a function in the middle;
  the server's own breakdown of one change (`evallint/debugStats`) is printed too;
- memory: peak resident memory of the whole process tree on 5,000 files;
- replay: seconds per finding after the child imported torch (with torch._dynamo and
  torchmetrics where its jobs need them), the slowest one named, and the rest of each
  file's wall time (interpreter starts, lint, torch's import).
Default corpus: the shipped fixtures. Measure on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EVALLINT = [sys.executable, "-m", "evallint"]


def python_files(folders: list[str]) -> list[str]:
    """The .py files of the corpus that libcst parses (the floor must be measurable)."""
    import libcst as cst

    out = []
    for folder in folders:
        root = Path(folder)
        paths = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for p in paths:
            if not p.is_file() or p.is_symlink():
                continue
            try:
                cst.parse_module(p.read_text(encoding="utf-8"))
            except Exception:  # noqa: BLE001 - unparsable or undecodable: not in the corpus
                continue
            out.append(str(p))
    return out


def compile_package() -> str:
    """Byte-compile evallint and its rule pack, as `pip install` does: an editable
    checkout run with PYTHONDONTWRITEBYTECODE set would otherwise compile every module
    in every process, a cost no installed copy pays."""
    import compileall

    ok = all(compileall.compile_dir(str(REPO / d), quiet=2) for d in ("evallint", "rules"))
    return "bytecode compiled" if ok else "bytecode NOT compiled (read-only checkout?)"


# --- floors -------------------------------------------------------------------------

def _parse_files(paths: list[str]) -> float:
    import libcst as cst

    texts = [Path(p).read_text(encoding="utf-8") for p in paths]
    start = time.perf_counter()
    for t in texts:
        cst.parse_module(t)  # each tree is dropped at once, as evallint drops it
    return time.perf_counter() - start


def parse_floor(paths: list[str]) -> float:
    """The bare parse in a fresh process (so that no cache of ours warms it)."""
    code = ("import sys, json; sys.path.insert(0, %r); from benchmarks.perf import _parse_files; "
            "print(_parse_files(json.load(sys.stdin)))" % str(REPO))
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(paths), capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip())


def _parse_chunk(paths: list[str]) -> int:
    import libcst as cst

    for p in paths:
        cst.parse_module(Path(p).read_text(encoding="utf-8"))
    return len(paths)


def pool_parse(paths: list[str], workers: int) -> float:
    """Wall time of a plain process pool that only parses (start-up included): the
    ceiling for what parallel evallint can reach."""
    by_size = sorted(paths, key=lambda p: -os.path.getsize(p))
    chunks = [by_size[i::workers * 4] for i in range(workers * 4)]
    start = time.perf_counter()
    if workers == 1:
        _parse_chunk(paths)
    else:
        with Pool(workers) as pool:
            pool.map(_parse_chunk, chunks)
    return time.perf_counter() - start


# --- evallint runs --------------------------------------------------------------------

def run_check(paths: list[str], *args: str, cwd: str | None = None, env: dict | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run([*EVALLINT, "check", "--format", "json", "--exit-zero", *args, *paths],
                          capture_output=True, text=True, cwd=cwd, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"evallint failed ({proc.returncode}): {proc.stderr[-800:]}")
    return elapsed


def paired(label: str, repeats: int, base, other) -> float:
    """Median of other/base over alternating runs."""
    ratios = []
    for _ in range(repeats):
        b = base()
        o = other()
        ratios.append(o / b)
    r = statistics.median(ratios)
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
    print(f"  {label:<64} {r:6.2f}x   (range {spread}, {repeats} pairs)")
    return r


def bench_cold(name: str, paths: list[str], repeats: int) -> None:
    print(f"\n== cold check vs bare parse: {name} ({len(paths)} files, "
          f"{sum(os.path.getsize(p) for p in paths) / 1e6:.2f} MB)")
    paired("evallint check --jobs 1 --no-cache (fresh process) / parse", repeats,
           lambda: parse_floor(paths), lambda: run_check(paths, "--jobs", "1", "--no-cache"))


def bench_jobs(name: str, paths: list[str], repeats: int, workers: int) -> None:
    print(f"\n== parallel: {name} ({len(paths)} files, {os.cpu_count()} cores)")
    ceiling = paired(f"plain parse pool: 1 process / {workers} processes (ceiling, as speed-up)", repeats,
                     lambda: pool_parse(paths, workers), lambda: pool_parse(paths, 1))
    ours = paired(f"evallint: --jobs 1 / --jobs {workers} (speed-up)", repeats,
                  lambda: run_check(paths, "--jobs", str(workers), "--no-cache"),
                  lambda: run_check(paths, "--jobs", "1", "--no-cache"))
    print(f"  evallint reaches {ours / ceiling:.0%} of the plain pool's speed-up")


def bench_warm(name: str, paths: list[str], repeats: int) -> None:
    print(f"\n== cache: {name} ({len(paths)} files)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "EVALLINT_CACHE_DIR": cache}

        def cold() -> float:
            shutil.rmtree(cache, ignore_errors=True)
            return run_check(paths, "--cache-dir", cache, env=env)

        def warm() -> float:
            run_check(paths, "--cache-dir", cache, env=env)  # make sure it is filled
            return run_check(paths, "--cache-dir", cache, env=env)

        paired("cold / warm (nothing changed; as speed-up)", repeats, warm, cold)


def _lsp_script(lines: int) -> str:
    """A long training script of the usual shapes, with findings in it."""
    block = (REPO / "benchmarks" / "data" / "lsp_block.py").read_text()
    out, n = [], 0
    while n < lines:
        out.append(block.replace("evaluate_", f"evaluate_{n}_"))
        n += block.count("\n")
    return "import torch\nimport torch.nn as nn\n" + "".join(out)


def bench_lsp(repeats: int, lines: int = 1000) -> None:
    from benchmarks.lsp_client import LspClient

    text = _lsp_script(lines)
    # The realistic edit: `=` -> `+=` on an accumulator in a function in the middle of
    # the file, and back (each version differs from the one before).
    bug = "        correct = (predicted == labels)"
    at = [i for i in range(len(text)) if text.startswith(bug, i)]
    middle = at[len(at) // 2]
    fixed = text[:middle] + bug.replace("correct =", "correct +=") + text[middle + len(bug):]
    edits = {
        "append a comment at the end": lambda i: text + f"\n# edit {i}\n",
        "'=' -> '+=' in a function in the middle, and back": lambda i: fixed if i % 2 == 0 else text,
    }
    print(f"\n== language server: {text.count(chr(10))}-line script, warm (load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.py"
        path.write_text(text)
        with LspClient([*EVALLINT, "lsp"], cwd=tmp) as client:
            uri = path.as_uri()
            client.open(uri, text)
            client.wait_diagnostics(uri)
            version = 1
            for label, edit in edits.items():
                times, breakdowns = [], []
                for i in range(max(repeats, 5)):
                    version += 1
                    t = time.perf_counter()
                    client.change(uri, edit(i), version=version)
                    client.wait_diagnostics(uri, version)
                    times.append((time.perf_counter() - t) * 1000)
                    breakdowns.append(client.request("evallint/debugStats", None).get("last", {}))
                results[label] = times, breakdowns
    import libcst as cst

    parses = []
    for _ in range(3):
        t = time.perf_counter()
        cst.parse_module(text)
        parses.append((time.perf_counter() - t) * 1000)
    parse_ms = statistics.median(parses)
    for label, (times, breakdowns) in results.items():
        print(f"  {label}: didChange -> publishDiagnostics: median {statistics.median(times):.0f} ms "
              f"(min {min(times):.0f}, max {max(times):.0f}); the bare parse of the script: {parse_ms:.0f} ms "
              f"({statistics.median(times) / parse_ms:.2f}x)")
        last = breakdowns[len(breakdowns) // 2]
        if last:
            print(f"    server side (one change): {json.dumps(last)}")
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return total / 1024


def bench_memory(paths: list[str], count: int, max_kb: int) -> None:
    """What grows with the number of files is what a run keeps per file (results,
    cache keys, the file list): the copies are the corpus's files of at most `max_kb`,
    so that 5,000 of them take a minute, not an hour, and the findings are real."""
    small = [p for p in paths if os.path.getsize(p) <= max_kb * 1024] or sorted(paths, key=os.path.getsize)[:20]
    with tempfile.TemporaryDirectory() as tmp:
        total = 0
        for i in range(count):
            src = small[i % len(small)]
            dest = Path(tmp) / f"f{i:05d}_{Path(src).name}"
            shutil.copyfile(src, dest)
            total += dest.stat().st_size
        print(f"\n== memory: {count} files ({total / 1e6:.1f} MB, copies of the {len(small)} corpus files "
              f"of at most {max_kb} KB), default jobs")
        start = time.perf_counter()
        proc = subprocess.Popen([*EVALLINT, "check", "--format", "json", "--exit-zero", "--no-cache", tmp],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Drain stdout as it comes (a full pipe would stall the run); keep only its size.
        out_bytes = [0]

        def drain() -> None:
            for chunk in iter(lambda: proc.stdout.read(65536), b""):
                out_bytes[0] += len(chunk)

        import threading
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _tree_rss_mb(proc.pid))
            time.sleep(0.05)
        reader.join()
        if proc.returncode not in (0, 1):
            raise SystemExit(f"evallint failed: {proc.stderr.read()[-500:]}")
    print(f"  peak resident memory of the process tree: {peak:.0f} MB "
          f"({time.perf_counter() - start:.0f} s, {out_bytes[0] / 1e6:.1f} MB of JSON)")


def bench_replay() -> None:
    print("\n== replay: the replay fixtures")
    times, starts = [], []
    for f in sorted((REPO / "fixtures" / "replay").glob("*.py")):
        t = time.perf_counter()
        out = subprocess.run([*EVALLINT, "replay", "--format", "json", "--device", "cpu", str(f)],
                             capture_output=True, text=True)
        wall = time.perf_counter() - t
        try:
            data = json.loads(out.stdout)
        except ValueError:
            continue
        per = [(x["seconds"], f"{f.name} {x['code']}") for x in data["findings"] if x.get("seconds") is not None]
        if per:
            times.extend(per)
            starts.append(wall - sum(s for s, _ in per))
    if times:
        slowest = max(times)
        print(f"  per finding after the torch import: median {statistics.median(s for s, _ in times):.3f} s, "
              f"max {slowest[0]:.3f} s ({slowest[1]}) over {len(times)} findings; child start and lint: median "
              f"{statistics.median(starts):.2f} s")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="*", help="folders of .py files (default: the fixtures)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2, help="workers for the parallel comparison")
    ap.add_argument("--memory-files", type=int, default=5000)
    ap.add_argument("--memory-max-kb", type=int, default=8, help="copy only corpus files up to this size")
    ap.add_argument("--only", default="cold,jobs,warm,lsp,memory,replay")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    folders = args.corpus or [str(REPO / "fixtures")]
    paths = python_files(folders)
    if not paths:
        raise SystemExit("no parsable .py files in the corpus")
    name = ", ".join(folders)
    compiled = compile_package()
    print(f"evallint benchmarks: {len(paths)} files; load average {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} cores; python {sys.version.split()[0]}; {compiled}")
    if "cold" in only:
        bench_cold(name, paths, args.repeats)
    if "jobs" in only:
        bench_jobs(name, paths, args.repeats, args.jobs)
    if "warm" in only:
        bench_warm(name, paths, args.repeats)
    if "lsp" in only:
        bench_lsp(args.repeats)
    if "memory" in only:
        bench_memory(paths, args.memory_files, args.memory_max_kb)
    if "replay" in only:
        bench_replay()


if __name__ == "__main__":
    main()
