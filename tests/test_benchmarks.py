"""The benchmarks run and print their ratios (a smoke test: never a timed assertion)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_perf_benchmark_prints_ratios():
    out = subprocess.run([sys.executable, "benchmarks/perf.py", "--repeats", "1", "--only", "cold,jobs",
                          str(ROOT / "fixtures" / "clean")], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    ratios = re.findall(r"^\s+(.+?)\s+(\d+\.\d\d)x\s", out.stdout, re.M)
    labels = " | ".join(label for label, _ in ratios)
    assert len(ratios) == 3, out.stdout
    assert "/ parse" in labels and "plain parse pool" in labels and "--jobs 1 / --jobs 2" in labels
    assert all(float(r) > 0 for _, r in ratios)


def test_memory_benchmark_prints_the_peak():
    out = subprocess.run([sys.executable, "benchmarks/perf.py", "--only", "memory", "--memory-files", "12",
                          str(ROOT / "fixtures" / "clean")], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"== memory: 12 files \(", out.stdout), out.stdout
    peak = re.search(r"peak resident memory of the process tree: (\d+) MB", out.stdout)
    assert peak and int(peak.group(1)) > 0, out.stdout
