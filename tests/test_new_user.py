"""What a new user runs into: odd files, interrupted runs, fixes that must converge,
messages and output that must read well. Everything goes through the real CLI in a
subprocess (or a real process that is signalled)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli

BUGGY = """\
import torch
correct = 0
total = 0
with torch.no_grad():
    for images, labels in test_loader:
        outputs = model(images)
        total += labels.size(0)
        correct = (outputs.argmax(1) == labels).sum().item()
print(100 * correct / total)
"""
FIXED_EL101 = BUGGY.replace("correct = (outputs", "correct += (outputs")


def _json(r) -> list:
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return json.loads(r.stdout)


# --- must never happen: tracebacks and hangs -----------------------------------------

def test_symlink_loop_under_a_folder_is_skipped_and_the_rest_checked(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text(BUGGY)
    (pkg / "loop.py").symlink_to("loop.py")           # a file that is a loop
    (pkg / "ring1.py").symlink_to("ring2.py")
    (pkg / "ring2.py").symlink_to("ring1.py")
    (pkg / "up").symlink_to("..")                      # a folder that leads back up
    r = run_cli("check", "--format", "json", "--no-cache", "--select", "EL101", "pkg", cwd=tmp_path)
    assert r.returncode == 1 and [d["path"] for d in _json(r)] == ["pkg/a.py"]
    assert "symlink loop" in r.stderr and "pkg/loop.py" in r.stderr


def test_non_utf8_stdin_is_el001_with_the_byte_and_line(tmp_path):
    data = b"import torch\nx = 1\nname = '\xe9t\xe9'\n"
    r = subprocess.run([sys.executable, "-m", "evallint", "check", "--format", "json", "--stdin-filename",
                        "s.py"], input=data, capture_output=True, cwd=tmp_path, timeout=120,
                       env={**os.environ, "NO_COLOR": "1"})
    assert b"Traceback" not in r.stderr and r.returncode == 1, r.stderr
    (d,) = json.loads(r.stdout)
    assert d["code"] == "EL001" and (d["line"], d["column"]) == (3, 9)
    assert "byte 0xe9 at line 3, column 9" in d["message"] and "utf-8" in d["message"]
    # --fix on stdin gives the input back unchanged, byte for byte
    r = subprocess.run([sys.executable, "-m", "evallint", "fix", "--stdin-filename", "s.py"], input=data,
                       capture_output=True, cwd=tmp_path, timeout=120)
    assert r.stdout == data and b"Traceback" not in r.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_named_py_is_skipped_not_read(tmp_path):
    (tmp_path / "a.py").write_text(BUGGY)
    os.mkfifo(tmp_path / "pipe.py")
    os.mkfifo(tmp_path / "named.py")
    # Nobody writes to the FIFOs: reading one would block until the timeout kills it.
    r = run_cli("check", "--format", "json", "--no-cache", "--select", "EL101", ".", "named.py",
                cwd=tmp_path, timeout=60)
    assert r.returncode == 1 and [d["path"] for d in _json(r)] == ["a.py"]
    assert "pipe.py: not a regular file" in r.stderr and "named.py: not a regular file" in r.stderr


CLASS_BODY_LOOP = """\
import torch

class Runner:
    net = Net()
    for x, y in test_loader:
        out = net(x)
"""


def test_el201_fix_in_a_class_body_converges(tmp_path):
    p = tmp_path / "c.py"
    p.write_text(CLASS_BODY_LOOP)
    r = run_cli("fix", "--unsafe-fixes", "--no-cache", "c.py", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert p.read_text().count("net.eval()") == 1
    once = p.read_text()
    r = run_cli("fix", "--unsafe-fixes", "--no-cache", "c.py", cwd=tmp_path)
    assert r.returncode == 0 and p.read_text() == once


# A rule pack installed the way any third-party pack is (an entry point on the path):
# EL901 offers a fix that does not remove its finding; EL902 rewrites one token.
_PACK = '''
import libcst as cst
from evallint.diagnostic import Applicability, Severity
from evallint.fixkit import statement
from evallint.rule import Change, Finding, Rule


class Stubborn(Rule):
    """Flags `stubborn()`; its fix adds a line above and leaves the call."""
    code = "EL901"
    name = "stubborn-call"
    summary = "test rule"
    severity = Severity.WARNING
    fixable = Applicability.SAFE
    tokens = ("stubborn",)

    def check(self, facts):
        for s in facts.statements:
            node = s.node
            if isinstance(node, cst.Expr) and isinstance(node.value, cst.Call) \\
                    and getattr(node.value.func, "value", None) == "stubborn" and s.line_node is not None:
                fix = self.fix(Applicability.SAFE, "Add a line above",
                               Change(s.line_node, cst.FlattenSentinel([statement("print()"), s.line_node])))
                yield Finding(node.value, "`stubborn()` is called", fix)


class FlagTrue(Rule):
    """Flags `use_flag = True`; its fix writes False."""
    code = "EL902"
    name = "flag-true"
    summary = "test rule"
    severity = Severity.WARNING
    fixable = Applicability.SAFE
    tokens = ("use_flag",)

    def check(self, facts):
        for s in facts.statements:
            node = s.node
            if isinstance(node, cst.Assign) and isinstance(node.value, cst.Name) and node.value.value == "True" \\
                    and isinstance(node.targets[0].target, cst.Name) and node.targets[0].target.value == "use_flag":
                yield Finding(node.value, "`use_flag` is on",
                              self.fix(Applicability.SAFE, "Turn it off", Change(node.value, cst.Name("False"))))
'''


@pytest.fixture
def pack_env(tmp_path):
    site = tmp_path / "site"
    (site / "evallint_testpack").mkdir(parents=True)
    (site / "evallint_testpack" / "__init__.py").write_text(_PACK)
    info = site / "evallint_testpack-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evallint-testpack\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[evallint.rules]\ntestpack = evallint_testpack\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_a_fix_that_keeps_its_finding_is_refused_and_reported(tmp_path, pack_env):
    p = tmp_path / "s.py"
    p.write_text("x = 1\nstubborn()\n")
    r = run_cli("check", "--format", "json", "--no-cache", "--select", "EL901", "s.py", cwd=tmp_path, env=pack_env)
    (d,) = _json(r)
    assert d["code"] == "EL901" and d["fix"] is None   # not offered: it would not hold
    assert "EL901 fix was not applied" in r.stderr
    r = run_cli("fix", "--no-cache", "--select", "EL901", "s.py", cwd=tmp_path, env=pack_env)
    assert "Traceback" not in r.stderr and r.returncode == 1
    assert p.read_text() == "x = 1\nstubborn()\n"
    assert "s.py:2: the EL901 fix was not applied: the rule still reports the same finding" in r.stderr


def test_edits_in_machine_formats_are_whole_tokens(tmp_path, pack_env):
    (tmp_path / "f.py").write_text("use_flag = True\n")
    r = run_cli("check", "--format", "json", "--no-cache", "--select", "EL902", "f.py", cwd=tmp_path, env=pack_env)
    (d,) = _json(r)
    assert d["fix"]["edits"] == [{"line": 1, "column": 12, "end_line": 1, "end_column": 16, "content": "False"}]
    r = run_cli("check", "--format", "sarif", "--no-cache", "--select", "EL902", "f.py", cwd=tmp_path, env=pack_env)
    replacement = json.loads(r.stdout)["runs"][0]["results"][0]["fixes"][0]["artifactChanges"][0]["replacements"][0]
    assert replacement["insertedContent"]["text"] == "False"


def test_safe_then_unsafe_fixes_give_the_same_file_as_both_at_once(tmp_path):
    src = "import torch\nnet = Net()\nfor x, y in test_loader:\n    out = net(x)\n"
    two, one = tmp_path / "two.py", tmp_path / "one.py"
    two.write_text(src)
    one.write_text(src)
    run_cli("fix", "--no-cache", "two.py", cwd=tmp_path)
    run_cli("fix", "--no-cache", "--unsafe-fixes", "two.py", cwd=tmp_path)
    run_cli("fix", "--no-cache", "--unsafe-fixes", "one.py", cwd=tmp_path)
    assert two.read_text() == one.read_text()
    assert one.read_text().index("net.eval()") < one.read_text().index("with torch.no_grad():")


def test_sigkill_during_fix_leaves_every_file_old_or_new(tmp_path):
    tree = tmp_path / "tree"
    body = BUGGY + "".join(f"\n\ndef helper_{i}(a, b):\n    return a * {i} + b\n" for i in range(30))
    new_body = body.replace("correct = (outputs", "correct += (outputs")
    for i in range(200):
        d = tree / f"pkg{i % 20}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"m{i}.py").write_text(body)
    files = sorted(tree.rglob("*.py"))
    proc = subprocess.Popen([sys.executable, "-m", "evallint", "fix", "--no-cache", "--select", "EL101",
                             "--jobs", "2", str(tree)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        # Kill it as soon as the first files are rewritten, in the middle of the run.
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(1 for f in files[:: 10] if f.read_text() != body) >= 2:
                break
            time.sleep(0.01)
    finally:
        proc.kill()   # the parent only, as `kill -9 PID` does
        proc.wait()
    # Its workers notice that their parent is gone and exit: none lingers, none goes
    # on fixing files from the queue.
    if Path("/proc/self/stat").exists():   # process listing from /proc (Linux)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _session_alive(proc.pid):
            time.sleep(0.1)
        assert not _session_alive(proc.pid), "worker processes outlived the killed parent"
    contents = [f.read_text() for f in files]
    assert all(c in (body, new_body) for c in contents)
    assert contents.count(new_body) >= 2
    assert sorted(tree.rglob("*.py")) == files   # no stray half-written .py file


def _session_alive(sid: int) -> bool:
    """Whether a live (not zombie) process of this session is left."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            return True
    return False


# --- surprises ------------------------------------------------------------------------

def test_a_file_named_twice_is_reported_once(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text(BUGGY)
    for args in (["pkg/a.py", "./pkg/a.py"], ["pkg", "pkg/a.py"], ["pkg/a.py", "pkg"]):
        r = run_cli("check", "--format", "json", "--no-cache", "--select", "EL101", *args, cwd=tmp_path)
        assert len(_json(r)) == 1, args


def test_no_python_files_is_said_and_exits_0(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("hello\n")
    r = run_cli("check", "docs", cwd=tmp_path)
    assert r.returncode == 0 and "no Python files found" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "pyproject.toml").write_text('[tool.evallint]\nexclude = ["skipme"]\n')
    (tmp_path / "skipme").mkdir()
    (tmp_path / "skipme" / "a.py").write_text(BUGGY)
    r = run_cli("check", "skipme", cwd=tmp_path)
    assert r.returncode == 0 and "no Python files found" in r.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_stops_with_130_and_no_traceback(tmp_path, jobs):
    body = BUGGY + "".join(f"\n\ndef helper_{i}(a, b):\n    return a * {i} + b\n" for i in range(10))
    for i in range(200):
        (tmp_path / "t" / f"p{i % 10}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "t" / f"p{i % 10}" / f"m{i}.py").write_text(body)
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "evallint", "check", "--jobs", jobs, "--cache-dir",
                             str(cache), "t"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    # Wait until it is checking files (the first cache entries appear), then Ctrl-C.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not any(cache.rglob("*.json")):
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err


def test_progress_bar_on_a_terminal_only(tmp_path):
    pty = pytest.importorskip("pty")
    # Enough work that even a fast machine passes the bar's one-second threshold.
    body = BUGGY * 2
    for i in range(200):
        (tmp_path / "t").mkdir(exist_ok=True)
        (tmp_path / "t" / f"m{i}.py").write_text(body)
    r = run_cli("check", "--no-cache", "--jobs", "1", "t", cwd=tmp_path, timeout=300)
    assert "checking" not in r.stderr and r.stderr.count("\x1b") == 0   # stderr is a pipe: no bar
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "evallint", "check", "--no-cache", "--jobs", "1", "t"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=slave,
                            env={k: v for k, v in os.environ.items() if k != "NO_COLOR"})
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=600)
    os.close(master)
    text = seen.decode("utf-8", "replace")
    assert "checking" in text and "/200" in text, text[-500:]


def test_diff_summary_and_remaining_findings(tmp_path):
    p = tmp_path / "a.py"
    p.write_text(BUGGY)
    r = run_cli("check", "--diff", "--no-cache", "a.py", cwd=tmp_path)
    assert p.read_text() == BUGGY and r.returncode == 1
    assert "+        correct += (outputs" in r.stdout
    assert "Would fix 1 finding (1 more with `--unsafe-fixes`)." in r.stderr
    remaining = [l for l in r.stderr.splitlines() if l.startswith("a.py:")]
    assert [l.split()[1] for l in remaining] == ["EL201"]   # EL101 is fixed by the diff


def test_notebook_diff_shows_cell_source_not_json(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Eval\n"]},
                    {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                     "source": BUGGY.splitlines(keepends=True)}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb, indent=1) + "\n")
    r = run_cli("check", "--diff", "--no-cache", "--select", "EL101", "nb.ipynb", cwd=tmp_path)
    assert "--- a/nb.ipynb:cell 2" in r.stdout and "+++ b/nb.ipynb:cell 2" in r.stdout
    assert "+        correct += (outputs.argmax(1) == labels).sum().item()\n" in r.stdout
    assert '\\n"' not in r.stdout and '"source"' not in r.stdout


def test_statistics_table_only_aligned_and_agrees_with_the_summary(tmp_path):
    (tmp_path / "a.py").write_text(BUGGY)
    (tmp_path / "b.py").write_text(BUGGY.replace("correct = (outputs", "correct += (outputs"))
    r = run_cli("check", "--statistics", "--no-cache", ".", cwd=tmp_path)
    lines = r.stdout.splitlines()
    assert not any(l.startswith(("a.py:", "b.py:")) for l in lines)   # the table, not the list
    table = [l for l in lines if re.match(r"\s*\d+\s+EL\d{3}\s", l)]
    assert [l.split()[1] for l in table] == ["EL101", "EL201"]
    assert len({l.index("EL") for l in table}) == 1       # aligned columns
    safe = sum(int(m) for l in table for m in re.findall(r"(\d+) fixable", l))
    unsafe = sum(int(m) for l in table for m in re.findall(r"(\d+) unsafe-fixable", l))
    assert f"({safe} fixable with `evallint check --fix`; {unsafe} more with" in lines[-1]
    r = run_cli("check", "--statistics", "--show-findings", "--no-cache", ".", cwd=tmp_path)
    assert any(l.startswith("a.py:") for l in r.stdout.splitlines())


# --- messages ---------------------------------------------------------------------------

def test_undecodable_file_and_truncated_notebook_messages(tmp_path):
    (tmp_path / "latin.py").write_bytes(b"import torch\n# caf\xe9\nx = 1\n")
    (tmp_path / "cut.ipynb").write_text('{"cells": [{"cell_type": "code", "source": ["x = 1\\n"')
    r = run_cli("check", "--format", "json", "--no-cache", "latin.py", "cut.ipynb", cwd=tmp_path)
    by = {d["path"]: d for d in _json(r)}
    assert "byte 0xe9 at line 2, column 6 is not valid utf-8" in by["latin.py"]["message"]
    assert "encoding declaration" not in by["latin.py"]["message"].split(";")[0]
    assert (by["latin.py"]["line"], by["latin.py"]["column"]) == (2, 6)
    assert "truncated" in by["cut.ipynb"]["message"]
    r = run_cli("check", "--format", "full", "--no-cache", "latin.py", "cut.ipynb", cwd=tmp_path)
    assert "2 | # caf\ufffd" in r.stdout                  # the frame shows the line with the bad byte
    assert not re.search(r"^\s*1 \| $", r.stdout, re.M)   # no empty line with a caret


def test_unknown_noqa_code_warns(tmp_path):
    (tmp_path / "a.py").write_text(BUGGY.replace(".sum().item()\n", ".sum().item()  # noqa: EL1O1, E501\n"))
    r = run_cli("check", "--no-cache", "--select", "EL101", "a.py", cwd=tmp_path)
    assert r.returncode == 1 and "a.py:8:" in r.stderr and "EL1O1" in r.stderr and "E501" not in r.stderr
    (tmp_path / "b.py").write_text("x = 1  # noqa: EL305\n")   # catalogued, planned: not a typo
    assert "warning" not in run_cli("check", "--no-cache", "b.py", cwd=tmp_path).stderr


def test_dash_reads_stdin(tmp_path):
    r = run_cli("check", "--format", "json", "--select", "EL101", "-", cwd=tmp_path, input=BUGGY)
    (d,) = _json(r)
    assert d["code"] == "EL101" and d["path"] == "-"


def test_explain_of_a_planned_code(tmp_path):
    # Every catalogued code is built now: a code is "planned" where the installed packs
    # lack its rule, as with a built-in pack that has no EL305.
    code = ("import sys, evallint_rules\n"
            "evallint_rules.RULES[:] = [r for r in evallint_rules.RULES if r.code != 'EL305']\n"
            "from evallint.cli import main\n"
            "sys.argv = ['evallint', 'explain', 'EL305']\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "preprocessing-fit-on-test" in r.stdout and "planned" in r.stdout, r.stderr
    built = run_cli("explain", "EL305", cwd=tmp_path)
    assert built.returncode == 0 and "## What it does" in built.stdout and "planned" not in built.stdout
    assert run_cli("explain", "EL999", cwd=tmp_path).returncode == 2


@pytest.fixture
def without(tmp_path):
    """An environment in which the named packages cannot be imported."""
    def _env(*names: str) -> dict:
        site = tmp_path / "blocker"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(textwrap.dedent(f"""
            import sys
            class _Block:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in {set(names)!r}:
                        raise ModuleNotFoundError(f"No module named {{name!r}}")
                    return None
            sys.meta_path.insert(0, _Block())
        """))
        return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return _env


def test_lsp_and_replay_without_their_extras_exit_2_with_the_hint(tmp_path, without):
    r = run_cli("lsp", cwd=tmp_path, env=without("pygls", "lsprotocol"), input="")
    assert r.returncode == 2 and "pip install 'evallint[lsp]'" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "a.py").write_text(BUGGY)
    r = run_cli("replay", "a.py", cwd=tmp_path, env=without("torch"))
    assert r.returncode == 2 and 'pip install "evallint[runtime]"' in r.stderr and "Traceback" not in r.stderr


def test_cache_goes_to_the_project_root_or_where_asked(tmp_path):
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (project / "src" / "a.py").write_text(BUGGY)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_cli("check", str(project / "src"), cwd=elsewhere)
    assert (project / ".evallint_cache").is_dir() and not (elsewhere / ".evallint_cache").exists()
    run_cli("check", "--cache-dir", str(tmp_path / "c1"), str(project / "src"), cwd=elsewhere)
    assert any((tmp_path / "c1").rglob("*.json"))
    run_cli("check", str(project / "src"), cwd=elsewhere, env={"EVALLINT_CACHE_DIR": str(tmp_path / "c2")})
    assert any((tmp_path / "c2").rglob("*.json"))


# --- notebooks: cell numbers as users see them --------------------------------------------

def test_notebook_concise_lines_parse_with_vims_errorformat(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Eval\n"]},
                    {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                     "source": BUGGY.splitlines(keepends=True)}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb, indent=1) + "\n")
    r = run_cli("check", "--format", "concise", "--no-cache", "--select", "EL101", "nb.ipynb", cwd=tmp_path)
    first = r.stdout.splitlines()[0]
    # Vim's default errorformat starts with %f:%l:%c:%m
    m = re.match(r"^(?P<f>[^:]+):(?P<l>\d+):(?P<c>\d+):(?P<m>.*)$", first)
    assert m and m["f"] == "nb.ipynb" and (m["l"], m["c"]) == ("8", "9") and m["m"].startswith(" EL101 [cell 2]")
    assert "markdown cells included" in r.stdout    # what the number counts is said


# --- the full format --------------------------------------------------------------------------

def test_full_format_context_initialisation_and_fix_diff(tmp_path):
    (tmp_path / "a.py").write_text(BUGGY)
    r = run_cli("check", "--format", "full", "--no-cache", "--select", "EL101", "a.py", cwd=tmp_path)
    lines = r.stdout.splitlines()
    assert lines[0] == "a.py:8:9: EL101 [accumulator-overwrite] [*]"
    assert lines[1].startswith("  `correct` is overwritten")          # the message under the header
    rows = [l for l in lines if re.match(r"^\s*\d+ \| ", l)]
    assert [int(l.split("|")[0]) for l in rows] == [2, 6, 7, 8, 9]    # the `= 0` line, 2 around
    assert "2 | correct = 0" in lines
    assert any(l.startswith("8 -") for l in lines) and any(l.startswith("8 +") and "correct +=" in l for l in lines)
