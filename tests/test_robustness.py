"""Inputs that break naive linters: deep nesting, huge files, odd bytes."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli

DEEP_BUG = """
correct = 0
total = 0
for x, y in test_loader:
    total += y.size(0)
    correct = (model(x).argmax(1) == y).sum().item()
print(correct / total)
"""


@pytest.mark.timeout(600)  # two runs over a pathological file on a loaded machine
def test_deeply_nested_code_is_analysed_without_crashing(tmp_path):
    # 3,000 implicitly concatenated strings and a 3,000-term sum: far deeper than
    # Python's default recursion limit, like the stdlib's pydoc_data/topics.py.
    strings = "TOPICS = (\n" + "\n".join(f"    'line {i}\\n'" for i in range(3000)) + "\n)\n"
    total = "N = " + " + ".join("1" for _ in range(3000)) + "\n"
    (tmp_path / "deep.py").write_text("import torch\n" + strings + total + DEEP_BUG, encoding="utf-8")
    r = run_cli("check", "--format", "json", "--no-cache", "--select", "EL101", "deep.py", cwd=tmp_path, timeout=280)
    assert "Traceback" not in r.stderr and r.returncode == 1, r.stderr[-2000:]
    found = json.loads(r.stdout)
    assert [d["code"] for d in found] == ["EL101"]
    assert found[0]["line"] == 3000 + 1 + 3 + 1 + 5
    r = run_cli("fix", "--no-cache", "--select", "EL101", "deep.py", cwd=tmp_path, timeout=280)
    assert r.returncode == 0 and "correct += (model(x)" in (tmp_path / "deep.py").read_text()


def test_the_standard_library_runs_clean(tmp_path):
    # No rule finding, no crash, on a large body of real non-ML code (the prefilter is
    # off for files that import numpy; stdlib files parse or are genuine syntax errors).
    import sysconfig
    stdlib = sysconfig.get_paths()["stdlib"]
    r = run_cli("check", "--format", "json", "--no-cache", f"{stdlib}/json", f"{stdlib}/email",
                f"{stdlib}/pydoc_data", f"{stdlib}/unittest", cwd=tmp_path, timeout=600)
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stderr[-2000:]
