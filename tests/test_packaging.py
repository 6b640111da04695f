"""Rule packs through entry points, the wheel's contents, and a real pre-commit run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, run_cli

PACK_RULE = '''
from evallint.diagnostic import Severity
from evallint.rule import Finding, Invalid, Rule
import libcst as cst


class NoPrintInEval(Rule):
    """
    ## What it does
    Demo rule of a third-party pack: flags `print` calls.
    ## Why it is wrong
    Teams log instead.
    ## Example
    print(acc)
    ## Fix
    Use the logger.
    ## References
    - none
    """
    code = "XT100"
    name = "team-no-print"
    summary = "Use the team logger."
    severity = Severity.WARNING
    tokens = ("print",)
    VALID = ["log(acc)\\n", "printer = 1\\n"]
    INVALID = [Invalid("print(acc)\\n", line=1)]

    def check(self, facts):
        for call, _ in facts.index.calls:
            if isinstance(call.func, cst.Name) and call.func.value == "print":
                yield Finding(call, "use the team logger")
'''


CRASH_RULE = '''
import os, signal
from evallint.rule import Rule


class CrashesTheProcess(Rule):
    """A pack whose native dependency dies on one input, simulated with SIGKILL."""
    code = "XC900"
    name = "crash-demo"
    summary = "crashes on purpose"
    tokens = ("CRASH_HERE",)

    def check(self, facts):
        os.kill(os.getpid(), signal.SIGKILL)
        yield from ()
'''


def _install_pack(tmp_path, name: str, module: str, code: str) -> dict:
    """Install a one-module rule pack into a private folder; return the env to use it."""
    pack = tmp_path / f"{name}-src"
    (pack / module).mkdir(parents=True)
    (pack / module / "__init__.py").write_text(code)
    (pack / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name}"
        version = "0.1"
        [project.entry-points."evallint.rules"]
        {module} = "{module}"
        [tool.setuptools]
        packages = ["{module}"]
    """))
    site = tmp_path / f"{name}-site"
    r = _pip("install", "-q", "--no-deps", "--target", str(site), str(pack))
    assert r.returncode == 0, r.stderr
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def _pip(*args, **kw):
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=600, **kw)


def test_third_party_pack_is_discovered(tmp_path):
    env = _install_pack(tmp_path, "team-rules", "team_rules", PACK_RULE)
    (tmp_path / "a.py").write_text("acc = 0.5\nprint(acc)\n")
    r = run_cli("check", "--format", "json", "a.py", cwd=tmp_path, env=env)
    assert r.returncode == 1, r.stderr
    assert [(d["code"], d["line"]) for d in json.loads(r.stdout)] == [("XT100", 2)]
    rules = json.loads(run_cli("rules", "--format", "json", cwd=tmp_path, env=env).stdout)
    codes = {x["code"] for x in rules}
    assert "XT100" in codes and "EL101" in codes  # the built-in pack is found the same way
    # Without the pack, the code is unknown: a clear error.
    r = run_cli("check", "--select", "XT100", "a.py", cwd=tmp_path)
    assert r.returncode == 2 and "XT100" in r.stderr


def test_a_crashing_worker_spares_the_other_files(tmp_path):
    env = _install_pack(tmp_path, "crash-pack", "crash_pack", CRASH_RULE)
    project = tmp_path / "project"
    project.mkdir()
    for i in range(10):
        (project / f"ok{i}.py").write_text("import torch\nmodel.eval\n")
    (project / "boom.py").write_text("# CRASH_HERE\nimport torch\nmodel.eval\n")
    r = run_cli("check", "--format", "json", "--jobs", "2", "--no-cache", ".", cwd=project, env=env)
    assert r.returncode == 2, r.stderr
    assert "boom.py: the analysis process crashed on this file" in r.stderr and "Traceback" not in r.stderr
    found = {d["path"] for d in json.loads(r.stdout)}
    assert found == {f"ok{i}.py" for i in range(10)}


def test_wheel_contains_the_rule_pack(tmp_path):
    # Build from a clean copy of the tracked files: a stale build/ folder in a working
    # tree must not decide what this test sees.
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert files, "the wheel test needs the git checkout"
    for name in files:
        dest = src / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest)
    r = _pip("wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src))
    assert r.returncode == 0, r.stderr
    [wheel] = tmp_path.glob("evallint-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "evallint_rules/el101_accumulator_overwrite.py" in names
    assert set(n for n in names if n.endswith(".py")) == {
        n.replace("rules/", "evallint_rules/", 1) for n in files
        if n.endswith(".py") and n.startswith(("evallint/", "rules/"))}
    assert not any(n.startswith("rules/") for n in names)  # no generic top-level `rules`
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(ep).decode()
    assert "[evallint.rules]" in text and "builtin = evallint_rules" in text


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for pre-commit")
def test_pre_commit_try_repo(tmp_path):
    pre_commit = [sys.executable, "-m", "pre_commit"]
    project = tmp_path / "project"
    project.mkdir()
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pc-home"), "NO_COLOR": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    git = lambda *a: subprocess.run(["git", *a], cwd=project, env=env, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (project / "eval.py").write_text(textwrap.dedent("""
        import torch
        correct = 0
        total = 0
        for x, y in test_loader:
            total += y.size(0)
            correct = (x.argmax(1) == y).sum().item()
        print(correct / total)
    """).lstrip())
    git("add", "eval.py")
    r = subprocess.run([*pre_commit, "try-repo", str(REPO), "evallint", "--all-files"],
                       cwd=project, env=env, capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "eval.py:6:5: EL101" in out
    r = subprocess.run([*pre_commit, "try-repo", str(REPO), "evallint-fix", "--all-files"],
                       cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert "correct += (x.argmax(1) == y)" in (project / "eval.py").read_text(), r.stdout + r.stderr
