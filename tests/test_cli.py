"""The real CLI in a subprocess: formats, exit codes, config, suppressions, fixes."""
from __future__ import annotations

import json
import os
import stat

from conftest import run_cli

BUGGY = """
import torch
correct = 0
total = 0
with torch.no_grad():
    for images, labels in test_loader:
        images, labels = images.to(device), labels.to(device)
        outputs = model(images)
        _, predicted = torch.max(outputs, 1)
        total += labels.size(0)
        correct = (predicted == labels).sum().item()  # 计算准确率 😀
print(100 * correct / total)
"""
CLEAN = """
import torch
correct = 0
total = 0
model.eval()
with torch.no_grad():
    for images, labels in test_loader:
        outputs = model(images)
        total += labels.size(0)
        correct += (outputs.argmax(1) == labels).sum().item()
print(100 * correct / total)
"""


def test_json_contract_field_by_field(write, tmp_path):
    write("a.py", BUGGY)
    r = run_cli("check", "--format", "json", "--select", "EL101", "a.py", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    assert data == [{
        "code": "EL101", "name": "accumulator-overwrite", "severity": "error",
        "message": data[0]["message"], "path": "a.py", "line": 10, "column": 9,
        "end_line": 10, "end_column": 53, "cell": None,
        "fix": {"applicability": "safe", "message": "Accumulate `correct` with `+=`",
                "edits": [{"line": 10, "column": 17, "end_line": 10, "end_column": 17, "content": "+"}]},
    }]
    assert "`correct`" in data[0]["message"]


def test_lsp_format_uses_utf16_columns(write, tmp_path):
    # The emoji before the flagged token on the line is 2 UTF-16 units, 1 code point.
    write("b.py", """
    import torch
    correct = 0
    for x, y in test_loader:
        out = model(x)
        n = 1; s = "😀"; correct = (out.argmax(1) == y).sum().item()
    print(correct)
    """)
    r = run_cli("check", "--format", "lsp", "--select", "EL101", "b.py", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    [doc] = json.loads(r.stdout)
    assert doc["uri"] == (tmp_path / "b.py").resolve().as_uri()
    [d] = doc["diagnostics"]
    line = (tmp_path / "b.py").read_text().splitlines()[4]
    col = line.index("correct =")
    assert d["range"]["start"] == {"line": 4, "character": col + 1}  # +1: the emoji's surrogate pair
    assert d["severity"] == 1 and d["code"] == "EL101" and d["source"] == "evallint"
    assert d["codeDescription"]["href"].endswith("/EL101")
    edit = d["data"]["fix"]["edits"][0]
    assert edit["newText"] == "+" and edit["range"]["start"]["character"] == line.index("= (") + 1  # inserted at the "="


def test_concise_and_full_formats(write, tmp_path):
    write("a.py", BUGGY)
    r = run_cli("check", "--format", "concise", "--select", "EL101", "a.py", cwd=tmp_path)
    assert r.stdout.splitlines()[0].startswith("a.py:10:9: EL101 [*] `correct` is overwritten")
    assert "Found 1 finding (1 fixable with `evallint check --fix`)." in r.stdout
    r = run_cli("check", "--format", "full", "--select", "EL101", "a.py", cwd=tmp_path)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("a.py:10:9: EL101 [accumulator-overwrite] [*]")
    src = next(i for i, l in enumerate(lines) if l.startswith("10 |"))
    assert "correct = (predicted == labels)" in lines[src]
    marker = lines[src + 1]
    assert marker.index("^") == lines[src].index("correct") and marker.rstrip().endswith("EL101")
    assert any("= fix (safe): Accumulate `correct` with `+=`" in l for l in lines)
    # two lines of context around the flagged line, and the fix as a diff under it
    assert lines[src - 2].startswith(" 8 |") and lines[src - 1].startswith(" 9 |")
    assert lines[src + 2].startswith("11 | print(100 * correct / total)")
    assert any(l.startswith("10 -") and "correct = (predicted" in l for l in lines)
    assert any(l.startswith("10 +") and "correct += (predicted" in l for l in lines)


def test_exit_codes(write, tmp_path):
    write("clean.py", CLEAN)
    assert run_cli("check", "clean.py", cwd=tmp_path).returncode == 0
    write("bug.py", BUGGY)
    assert run_cli("check", "bug.py", cwd=tmp_path).returncode == 1
    assert run_cli("check", "bug.py", "--exit-zero", cwd=tmp_path).returncode == 0
    r = run_cli("check", "--select", "EL999", "bug.py", cwd=tmp_path)
    assert r.returncode == 2 and "unknown rule code or name 'EL999'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("check", "missing.py", cwd=tmp_path)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_fail_on_levels(write, tmp_path):
    # EL202 is a warning: fails by default and with --fail-on warning, passes with --fail-on error.
    write("w.py", """
    import torch
    def evaluate(model, loader):
        model.eval()
        for x, y in loader:
            out = model(x)
    """)
    assert run_cli("check", "w.py", cwd=tmp_path).returncode == 1
    assert run_cli("check", "w.py", "--fail-on", "error", cwd=tmp_path).returncode == 0
    assert run_cli("check", "w.py", "--fail-on", "info", cwd=tmp_path).returncode == 1


def test_config_unknown_key_and_code(write, tmp_path):
    write("pyproject.toml", '[tool.evallint]\nselekt = ["EL101"]\n')
    write("a.py", BUGGY)
    r = run_cli("check", "a.py", cwd=tmp_path)
    assert r.returncode == 2 and "unknown key in [tool.evallint]: selekt" in r.stderr
    write("pyproject.toml", '[tool.evallint]\nignore = ["EL777"]\n')
    r = run_cli("check", "a.py", cwd=tmp_path)
    assert r.returncode == 2 and "EL777" in r.stderr


def test_config_select_ignore_per_file(write, tmp_path):
    write("pyproject.toml", """
    [tool.evallint]
    select = ["EL1", "EL2"]
    ignore = ["EL202"]
    per-file-ignores = {"legacy/*.py" = ["EL101"]}
    extend-exclude = ["generated"]
    """)
    write("a.py", BUGGY)
    write("legacy/old.py", BUGGY)
    write("generated/gen.py", BUGGY)
    r = run_cli("check", "--format", "json", ".", cwd=tmp_path)
    found = {(d["path"], d["code"]) for d in json.loads(r.stdout)}
    assert ("a.py", "EL101") in found
    assert ("legacy/old.py", "EL101") not in found and ("legacy/old.py", "EL201") in found
    assert not any(p.startswith("generated") for p, _ in found)
    assert not any(c == "EL202" for _, c in found)


def test_name_patterns_from_config(write, tmp_path):
    # A team whose evaluation loader is called `holdout_batches`... and `score_fn` loops.
    write("pyproject.toml", '[tool.evallint]\neval-data-pattern = "^heldback"\n')
    write("a.py", """
    import torch
    model.eval()
    for x, y in heldback:
        out = model(x)
    """)
    r = run_cli("check", "--format", "json", "--select", "EL202", "a.py", cwd=tmp_path)
    assert [d["code"] for d in json.loads(r.stdout)] == ["EL202"]


def test_suppressions(write, tmp_path):
    text = BUGGY.replace("# 计算准确率 😀", "# noqa: EL101")
    write("a.py", text)
    write("b.py", BUGGY.replace("# 计算准确率 😀", "# evallint: ignore[accumulator-overwrite]"))
    write("c.py", BUGGY.replace("# 计算准确率 😀", "# noqa"))
    write("d.py", "# evallint: skip-file\n" + BUGGY)
    write("e.py", BUGGY.replace("# 计算准确率 😀", "# noqa: EL102"))
    r = run_cli("check", "--format", "json", "--select", "EL101", ".", cwd=tmp_path)
    assert {d["path"] for d in json.loads(r.stdout)} == {"e.py"}


def test_fix_writes_safe_fixes_and_keeps_bytes(tmp_path):
    path = tmp_path / "crlf.py"
    body = BUGGY.lstrip("\n").replace("\n", "\r\n").encode("utf-8")
    path.write_bytes(b"\xef\xbb\xbf" + body)
    os.chmod(path, 0o754)
    r = run_cli("fix", "crlf.py", "--select", "EL101", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"correct += (predicted" in data
    assert data.count(b"\r\n") == body.count(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert stat.S_IMODE(path.stat().st_mode) == 0o754
    assert "Fixed 1 finding." in r.stdout
    before = path.read_bytes()
    assert run_cli("fix", "crlf.py", "--select", "EL101", cwd=tmp_path).returncode == 0
    assert path.read_bytes() == before  # idempotent


def test_latin1_cookie_kept(tmp_path):
    path = tmp_path / "l1.py"
    text = "# -*- coding: latin-1 -*-\n# résumé\n" + BUGGY.lstrip("\n").replace("# 计算准确率 😀", "# précision")
    path.write_bytes(text.encode("latin-1"))
    r = run_cli("fix", "l1.py", "--select", "EL101", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert path.read_bytes() == text.replace("correct = (pred", "correct += (pred").encode("latin-1")


def test_unsafe_fixes_need_the_flag(write, tmp_path):
    p = write("a.py", "import torch\nacc = n_correct / (len(y) * 100)\n")
    r = run_cli("fix", "a.py", cwd=tmp_path)
    assert r.returncode == 1 and p.read_text().endswith("(len(y) * 100)\n")
    assert "(1 with `evallint check --fix --unsafe-fixes`)" in r.stdout
    # offered without --fix: the summary names the command that applies them
    r = run_cli("check", "a.py", "--unsafe-fixes", cwd=tmp_path)
    assert r.returncode == 1 and "(1 with `evallint check --fix --unsafe-fixes`)" in r.stdout
    r = run_cli("fix", "a.py", "--unsafe-fixes", cwd=tmp_path)
    assert r.returncode == 0 and p.read_text() == "import torch\nacc = n_correct / len(y) * 100\n"


def test_diff_writes_nothing(write, tmp_path):
    p = write("a.py", BUGGY)
    before = p.read_text()
    r = run_cli("check", "--diff", "--select", "EL101", "a.py", cwd=tmp_path)
    assert r.returncode == 1
    assert "-        correct = (predicted" in r.stdout and "+        correct += (predicted" in r.stdout
    assert p.read_text() == before


def test_bad_files_do_not_stop_the_others(write, tmp_path):
    write("ok.py", BUGGY)
    write("broken.py", "def f(:\n    pass\n")
    (tmp_path / "bin.py").write_bytes(b"x = '\xff\xfe'\n")
    write("nb.ipynb", "{not json")
    r = run_cli("check", "--format", "json", ".", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    by_path = {}
    for d in json.loads(r.stdout):
        by_path.setdefault(d["path"], set()).add(d["code"])
    assert by_path["broken.py"] == {"EL000"}
    assert by_path["bin.py"] == {"EL001"} and by_path["nb.ipynb"] == {"EL001"}
    assert "EL101" in by_path["ok.py"]


def test_stdin(tmp_path):
    r = run_cli("check", "--stdin-filename", "x/nb_eval.py", "--format", "json", "--select", "EL101",
                cwd=tmp_path, input=BUGGY)
    assert r.returncode == 1 and json.loads(r.stdout)[0]["path"] == "x/nb_eval.py"
    r = run_cli("fix", "--stdin-filename", "x.py", "--select", "EL101", cwd=tmp_path, input=BUGGY)
    assert "correct += (predicted" in r.stdout and r.returncode == 0
    # Nothing to fix: the input comes back unchanged (an editor replaces its buffer with it).
    r = run_cli("fix", "--stdin-filename", "x.py", cwd=tmp_path, input=CLEAN)
    assert r.stdout == CLEAN and r.returncode == 0


def test_parallel_and_cache_give_the_same_results(write, tmp_path):
    for i in range(12):
        write(f"pkg/m{i}.py", BUGGY if i % 2 else CLEAN)
    serial = run_cli("check", "--format", "json", "--jobs", "1", "--no-cache", "pkg", cwd=tmp_path)
    parallel = run_cli("check", "--format", "json", "--jobs", "2", "pkg", cwd=tmp_path)
    cached = run_cli("check", "--format", "json", "--jobs", "2", "pkg", cwd=tmp_path)
    assert json.loads(serial.stdout) == json.loads(parallel.stdout) == json.loads(cached.stdout)
    assert len(json.loads(serial.stdout)) >= 6
    # no pyproject.toml above: the cache goes to the first checked root
    assert (tmp_path / "pkg" / ".evallint_cache").is_dir()


def test_statistics(write, tmp_path):
    write("a.py", BUGGY)
    r = run_cli("check", "--statistics", "--format", "concise", "a.py", cwd=tmp_path)
    assert any(l.split()[:3] == ["1", "EL101", "accumulator-overwrite"] for l in r.stdout.splitlines())


def test_rules_and_explain(tmp_path):
    r = run_cli("rules", "--format", "json", cwd=tmp_path)
    rules = {x["code"]: x for x in json.loads(r.stdout)}
    for code in ("EL000", "EL001", "EL101", "EL102", "EL201", "EL202", "EL204", "EL301", "EL302"):
        assert code in rules
    assert rules["EL101"]["fix"] == "safe" and rules["EL102"]["fix"] == "unsafe"
    table = run_cli("rules", cwd=tmp_path).stdout
    assert "accumulator-overwrite" in table and "percent-in-denominator" in table
    r = run_cli("explain", "EL101", cwd=tmp_path)
    assert r.returncode == 0 and "## Why it is wrong" in r.stdout and "chainer/chainer#777" in r.stdout
    assert run_cli("explain", "accumulator-overwrite", cwd=tmp_path).returncode == 0
    r = run_cli("explain", "EL999", cwd=tmp_path)
    assert r.returncode == 2 and "unknown rule" in r.stderr


def test_fix_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real_eval.py"
    real.write_text(BUGGY.lstrip("\n"))
    link = tmp_path / "link.py"
    link.symlink_to(real.name)
    r = run_cli("fix", "--select", "EL101", "link.py", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert link.is_symlink() and "correct += (predicted" in real.read_text()


def test_force_exclude_applies_to_named_files(write, tmp_path):
    write("pyproject.toml", '[tool.evallint]\nextend-exclude = ["gen"]\n')
    write("gen/g.py", BUGGY)
    assert run_cli("check", "gen/g.py", cwd=tmp_path).returncode == 1  # named explicitly: checked
    r = run_cli("check", "--force-exclude", "gen/g.py", cwd=tmp_path)
    assert r.returncode == 0 and "no Python files found" in r.stderr
    write("pyproject.toml", '[tool.evallint]\nextend-exclude = ["gen"]\nforce-exclude = true\n')
    assert run_cli("check", "gen/g.py", cwd=tmp_path).returncode == 0


def test_statistics_never_pollute_machine_output(write, tmp_path):
    write("a.py", BUGGY)
    r = run_cli("check", "--statistics", "--format", "json", "a.py", cwd=tmp_path)
    assert json.loads(r.stdout)  # parses: the table went to stderr
    assert "EL101  accumulator-overwrite" in r.stderr


def test_color_can_be_forced_when_piped(write, tmp_path):
    write("a.py", BUGGY)
    r = run_cli("check", "--color", "--format", "full", "a.py", cwd=tmp_path, env={"NO_COLOR": ""})
    assert "\x1b[" in r.stdout
    r = run_cli("check", "--format", "full", "a.py", cwd=tmp_path)
    assert "\x1b[" not in r.stdout


def test_empty_selection_and_stdin_misuse_are_errors(write, tmp_path):
    write("a.py", BUGGY)
    r = run_cli("check", "--select", "", "a.py", cwd=tmp_path)
    assert r.returncode == 2 and "the selection is empty" in r.stderr
    r = run_cli("check", "--stdin-filename", "x.py", "a.py", cwd=tmp_path, input=BUGGY)
    assert r.returncode == 2 and "give no paths" in r.stderr
