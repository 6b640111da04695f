"""Baselines: record today's findings, fail only on new ones, survive moved lines."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from evallint.baseline import (
    Baseline, BaselineError, fingerprints, load_baseline, relative_posix, write_baseline,
)
from evallint.diagnostic import Diagnostic, Severity

BUG = "        correct = (predicted == labels).sum().item()"


def diag(line: int = 7, text: str = BUG, code: str = "EL101", path: str = "src/eval.py",
         cell=None) -> Diagnostic:
    return Diagnostic(code=code, name="accumulator-overwrite", severity=Severity.ERROR,
                      message="`correct` is overwritten each batch", path=path, line=line,
                      column=9, end_line=line, end_column=16, cell=cell, source_lines=(text,))


def roundtrip(tmp_path: Path, recorded: list[Diagnostic], current: list[Diagnostic]):
    write_baseline(Path("baseline.json"), recorded, cwd=tmp_path)
    return load_baseline(Path("baseline.json"), cwd=tmp_path).filter(current, cwd=tmp_path)


def test_written_file_is_versioned_sorted_and_readable(tmp_path):
    diags = [diag(20, path="b.py"), diag(3, "    loss = criterion(out, y)", "EL106", "a.py"),
             diag(9, path="a.py")]
    count = write_baseline(tmp_path / "baseline.json", diags, cwd=tmp_path)
    document = json.loads((tmp_path / "baseline.json").read_text(encoding="utf-8"))

    assert count == 3
    assert document["version"] == 1 and document["tool"] == "evallint"
    assert [(e["path"], e["code"]) for e in document["entries"]] == [
        ("a.py", "EL101"), ("a.py", "EL106"), ("b.py", "EL101")]
    first = document["entries"][0]
    assert list(first) == ["code", "path", "cell", "line", "fingerprint"]
    assert first["line"] == "correct = (predicted == labels).sum().item()"
    assert first["cell"] is None
    assert len(first["fingerprint"]) == 32
    assert (tmp_path / "baseline.json").read_text(encoding="utf-8").endswith("}\n")


def test_writing_is_deterministic_whatever_the_input_order(tmp_path):
    diags = [diag(1), diag(5), diag(9, "x = 1", "EL102"), diag(2, path="other.py")]
    write_baseline(tmp_path / "one.json", diags, cwd=tmp_path)
    write_baseline(tmp_path / "two.json", list(reversed(diags)), cwd=tmp_path)
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()


def test_non_ascii_line_text_is_kept_readable(tmp_path):
    write_baseline(tmp_path / "b.json", [diag(text="acc = hits / n  # 准确率")], cwd=tmp_path)
    assert "准确率" in (tmp_path / "b.json").read_text(encoding="utf-8")


def test_same_findings_are_all_suppressed(tmp_path):
    diags = [diag(7), diag(30, "    total = len(y)", "EL104")]
    assert roundtrip(tmp_path, diags, diags) == ([], 2)


def test_moved_and_reindented_lines_stay_suppressed(tmp_path):
    moved = diag(52, "            correct  =  (predicted == labels).sum().item()")
    assert roundtrip(tmp_path, [diag(7)], [moved]) == ([], 1)


def test_changed_line_text_is_new(tmp_path):
    changed = diag(7, "        correct = (preds == labels).sum().item()")
    assert roundtrip(tmp_path, [diag(7)], [changed]) == ([changed], 0)


def test_other_file_or_other_code_is_new(tmp_path):
    other_file = diag(7, path="src/train.py")
    other_code = diag(7, code="EL105")
    assert roundtrip(tmp_path, [diag(7)], [other_file, other_code]) == ([other_file, other_code], 0)


def test_a_third_identical_line_is_caught(tmp_path):
    recorded = [diag(7), diag(40)]
    current = [diag(9), diag(42), diag(80)]
    new, suppressed = roundtrip(tmp_path, recorded, current)
    assert (new, suppressed) == ([diag(80)], 2)


def test_fixing_one_of_two_identical_lines_keeps_the_other_suppressed(tmp_path):
    assert roundtrip(tmp_path, [diag(7), diag(40)], [diag(38)]) == ([], 1)


def test_inserting_a_notebook_cell_does_not_resurrect_findings(tmp_path):
    recorded = [diag(2, path="nb.ipynb", cell=3)]
    moved_down = diag(2, path="nb.ipynb", cell=4)         # a markdown cell was inserted above
    second_copy = diag(5, path="nb.ipynb", cell=6)        # the same bug line pasted again: new
    assert roundtrip(tmp_path, recorded, [moved_down, second_copy]) == ([second_copy], 1)


def test_new_diagnostics_keep_the_callers_order(tmp_path):
    current = [diag(90, "b = 2"), diag(10, "a = 1"), diag(7)]
    new, suppressed = roundtrip(tmp_path, [diag(7)], current)
    assert (new, suppressed) == (current[:2], 1)


def test_paths_are_relative_to_the_baseline_folder_and_work_from_any_cwd(tmp_path):
    (tmp_path / "ci").mkdir()
    (tmp_path / "src").mkdir()
    write_baseline(Path("ci/baseline.json"), [diag(7, path="src/eval.py")], cwd=tmp_path)
    entry = json.loads((tmp_path / "ci" / "baseline.json").read_text())["entries"][0]
    assert entry["path"] == "../src/eval.py"

    # Run later from inside src/, naming the file and the baseline from there.
    src = tmp_path / "src"
    baseline = load_baseline(Path("../ci/baseline.json"), cwd=src)
    assert baseline.filter([diag(12, path="eval.py")], cwd=src) == ([], 1)
    # An absolute path names the same file.
    assert baseline.filter([diag(12, path=str(src / "eval.py"))], cwd=src) == ([], 1)


def test_relative_posix_normalises_dots_and_separators(tmp_path):
    assert relative_posix("./src/../src/eval.py", tmp_path, tmp_path) == "src/eval.py"
    assert relative_posix("eval.py", tmp_path, tmp_path / "src") == "src/eval.py"


def test_fingerprints_do_not_depend_on_input_order(tmp_path):
    diags = [diag(7), diag(40), diag(3, path="a.py")]
    forward = fingerprints(diags, tmp_path, tmp_path)
    backward = fingerprints(list(reversed(diags)), tmp_path, tmp_path)
    assert forward == list(reversed(backward))
    assert len(set(forward)) == 3


def test_empty_source_lines_still_fingerprint(tmp_path):
    unreadable = Diagnostic("EL001", "unreadable-file", Severity.ERROR, "cannot decode",
                            "bad.py", 1, 1, 1, 1)
    assert roundtrip(tmp_path, [unreadable], [unreadable]) == ([], 1)


def test_loaded_baseline_exposes_entries(tmp_path):
    write_baseline(tmp_path / "b.json", [diag(7)], cwd=tmp_path)
    baseline = load_baseline(tmp_path / "b.json")
    assert isinstance(baseline, Baseline)
    assert baseline.folder == tmp_path.resolve()
    assert [e["code"] for e in baseline.entries] == ["EL101"]


@pytest.mark.parametrize("content, expected", [
    (None, "baseline file b.json does not exist; create it with --write-baseline b.json"),
    ("{not json", "baseline b.json is not valid JSON (line 1, column 2"),
    ("[]", 'baseline b.json is malformed: expected a JSON object with "tool": "evallint"'),
    ('{"tool": "evallint", "version": 2, "entries": []}',
     "baseline b.json is malformed: unsupported version 2 (this evallint reads version 1)"),
    ('{"tool": "evallint", "version": 1, "entries": {}}',
     'baseline b.json is malformed: "entries" must be a list'),
    ('{"tool": "evallint", "version": 1, "entries": [3]}',
     "baseline b.json is malformed: entry 1 is not an object"),
    ('{"tool": "evallint", "version": 1, "entries": [{"code": "EL101", "path": "a.py", "line": ""}]}',
     'baseline b.json is malformed: entry 1 has no string "fingerprint"'),
])
def test_unusable_baselines_raise_a_clear_error(tmp_path, content, expected):
    if content is not None:
        (tmp_path / "b.json").write_text(content, encoding="utf-8")
    with pytest.raises(BaselineError) as caught:
        load_baseline(Path("b.json"), cwd=tmp_path)
    assert str(caught.value).startswith(expected)


def test_unwritable_baseline_raises_a_clear_error(tmp_path):
    with pytest.raises(BaselineError, match="cannot write baseline"):
        write_baseline(Path("missing-folder/b.json"), [diag()], cwd=tmp_path)


# The real CLI: record, then fail only on new findings ----------------------------------

BUGGY = """
import torch


def evaluate(model, test_loader):
    model.eval()
    correct = 0
    total = 0
    with torch.no_grad():
        for images, labels in test_loader:
            outputs = model(images)
            _, predicted = torch.max(outputs, 1)
            total += labels.size(0)
            correct = (predicted == labels).sum().item()
    print(100 * correct / total)
"""


def codes(done) -> list[str]:
    return [d["code"] for d in json.loads(done.stdout)]


def test_cli_baseline_hides_recorded_findings_and_catches_new_ones(cli, write, tmp_path):
    write("src/eval.py", BUGGY)
    (tmp_path / "ci").mkdir()
    done = cli("check", "--write-baseline", "ci/baseline.json", "--no-cache", "src", cwd=tmp_path)
    assert "Wrote 1 finding to the baseline ci/baseline.json." in done.stderr
    document = json.loads((tmp_path / "ci" / "baseline.json").read_text(encoding="utf-8"))
    assert [(e["code"], e["path"]) for e in document["entries"]] == [("EL101", "../src/eval.py")]

    # Same code, checked from another folder: nothing new, exit 0.
    done = cli("check", "--format", "json", "--baseline", "../ci/baseline.json", ".", cwd=tmp_path / "src")
    assert (done.returncode, codes(done)) == (0, [])
    assert "1 finding hidden by the baseline" in done.stderr

    # Unrelated edits move the line: still hidden.
    write("src/eval.py", "import os\n\n\nSEED = 0\n" + BUGGY)
    done = cli("check", "--format", "json", "--baseline", "ci/baseline.json", "src", cwd=tmp_path)
    assert (done.returncode, codes(done)) == (0, [])

    # A second, identical bug in a new function is new.
    write("src/eval.py", BUGGY + BUGGY.replace("def evaluate", "def evaluate_again"))
    done = cli("check", "--format", "json", "--baseline", "ci/baseline.json", "src", cwd=tmp_path)
    assert done.returncode == 1
    (new,) = json.loads(done.stdout)
    assert (new["code"], new["line"]) == ("EL101", 28)


def test_cli_unwritable_baseline_is_a_clear_error(cli, write, tmp_path):
    write("eval.py", BUGGY)
    done = cli("check", "--write-baseline", "no-such-folder/baseline.json", ".", cwd=tmp_path)
    assert done.returncode == 2
    assert ("evallint: error: cannot write baseline no-such-folder/baseline.json: "
            "No such file or directory") in done.stderr


def test_cli_missing_baseline_is_a_usage_error(cli, write, tmp_path):
    write("eval.py", BUGGY)
    done = cli("check", "--baseline", "nope.json", ".", cwd=tmp_path)
    assert done.returncode == 2
    assert "baseline file nope.json does not exist; create it with --write-baseline nope.json" in done.stderr
