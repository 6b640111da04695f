"""Notebooks: one virtual module, masked magics, cell coordinates, layout kept."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli
from evallint.source import Source

CELLS = [
    ("markdown", "# Evaluate the classifier\nWe measure accuracy on the test split."),
    ("code", "%matplotlib inline\n!pip install torch\nimport torch\nimport torch.nn as nn"),
    ("code", "correct = 0\ntotal = 0"),
    ("markdown", "## Test loop"),
    ("code", "with torch.no_grad():\n    for images, labels in test_loader:\n        outputs = model(images)\n"
             "        total += labels.size(0)\n        correct = (outputs.argmax(1) == labels).sum().item()  # é"),
    ("code", "print(f\"accuracy {100 * correct / total:.1f}%\")\nmodel?"),
]


def notebook(cells=CELLS, indent=1, ensure_ascii=False, trailing_newline=True, as_lists=True) -> str:
    nb = {"cells": [], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    for i, (kind, text) in enumerate(cells):
        source = text.splitlines(keepends=True) if as_lists else text
        cell = {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": source}
        if kind == "code":
            cell.update(execution_count=i, outputs=[{"name": "stdout", "output_type": "stream",
                                                      "text": ["déjà vu\n"]}])
        nb["cells"].append(cell)
    return json.dumps(nb, indent=indent, ensure_ascii=ensure_ascii) + ("\n" if trailing_newline else "")


def test_virtual_module_masks_magics_and_keeps_positions():
    src = Source.from_text(notebook(), "n.ipynb", notebook=True)
    assert src.text.splitlines()[:2] == ["#matplotlib inline", "#pip install torch"]
    assert [s.cell for s in src.cell_spans] == [2, 3, 5, 6]
    assert src.to_cell(8) == (5, 2)  # cells 2 and 3 hold lines 1-6


def test_reported_at_cell_and_line(tmp_path):
    (tmp_path / "eval.ipynb").write_text(notebook(), encoding="utf-8")
    r = run_cli("check", "--format", "json", "--select", "EL101", "eval.ipynb", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    [d] = json.loads(r.stdout)
    assert (d["cell"], d["line"], d["column"]) == (5, 5, 9)
    assert d["fix"]["edits"] == [{"line": 5, "column": 17, "end_line": 5, "end_column": 17, "content": "+"}]
    full = run_cli("check", "--format", "full", "--select", "EL101", "eval.ipynb", cwd=tmp_path).stdout
    assert full.startswith("eval.ipynb:cell 5:5:9: EL101")
    assert "5 |         correct = (outputs.argmax(1) == labels).sum().item()  # é" in full


@pytest.mark.parametrize("layout", [
    dict(indent=1), dict(indent=2), dict(indent=4, ensure_ascii=True), dict(trailing_newline=False),
    dict(as_lists=False),
])
def test_fix_changes_only_the_bug_and_keeps_layout(tmp_path, layout):
    raw = notebook(**layout)
    path = tmp_path / "eval.ipynb"
    path.write_text(raw, encoding="utf-8")
    r = run_cli("fix", "--select", "EL101", "eval.ipynb", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    expected = raw.replace("correct = (outputs", "correct += (outputs")
    assert path.read_text(encoding="utf-8") == expected
    assert run_cli("fix", "--select", "EL101", "eval.ipynb", cwd=tmp_path).returncode == 0
    assert path.read_text(encoding="utf-8") == expected  # idempotent


def test_untouched_notebook_round_trips_byte_for_byte(tmp_path):
    clean = [c if "correct =" not in c[1] else (c[0], c[1].replace("correct = (", "correct += (")) for c in CELLS]
    for layout in (dict(indent=1), dict(indent=2, ensure_ascii=True), dict(trailing_newline=False)):
        raw = notebook(clean, **layout).encode("utf-8")
        path = tmp_path / "clean.ipynb"
        path.write_bytes(raw)
        r = run_cli("fix", "clean.ipynb", cwd=tmp_path)
        assert path.read_bytes() == raw, r.stdout
        src = Source.from_bytes(raw, "clean.ipynb")
        assert src.to_bytes() == raw


def test_broken_cell_is_reported_and_the_rest_checked(tmp_path):
    cells = CELLS[:2] + [("code", "def broken(:\n    pass")] + CELLS[2:]
    (tmp_path / "b.ipynb").write_text(notebook(cells), encoding="utf-8")
    r = run_cli("check", "--format", "json", "b.ipynb", cwd=tmp_path)
    found = {(d["code"], d["cell"], d["line"]) for d in json.loads(r.stdout)}
    assert ("EL000", 3, 1) in found and ("EL101", 6, 5) in found


def test_broken_json_and_odd_cells_get_clear_messages(tmp_path):
    (tmp_path / "bad.ipynb").write_text('{"cells": [', encoding="utf-8")
    (tmp_path / "odd.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": 3}]}))
    (tmp_path / "ok.py").write_text("import torch\nmodel.eval\n")
    r = run_cli("check", "--format", "concise", ".", cwd=tmp_path)
    assert "Traceback" not in r.stderr
    assert "bad.ipynb:1:1: EL001 the notebook's JSON ends early" in r.stdout and "truncated" in r.stdout
    assert "odd.ipynb:1:1: EL001 cell 1: a cell's source is neither a string nor a list of strings" in r.stdout
    assert "ok.py:2:1: EL204" in r.stdout


def test_fix_never_touches_a_masked_magic_line(tmp_path):
    cells = [("code", "import torch\nwith torch.no_grad:\n    %time out = model(x)\n    y = 1")]
    path = tmp_path / "m.ipynb"
    raw = notebook(cells)
    path.write_text(raw, encoding="utf-8")
    run_cli("fix", "m.ipynb", cwd=tmp_path)
    text = json.loads(path.read_text())["cells"][0]["source"]
    assert "".join(text) == "import torch\nwith torch.no_grad():\n    %time out = model(x)\n    y = 1"


def test_stdin_fix_of_a_notebook_returns_the_notebook(tmp_path):
    raw = notebook()
    r = run_cli("fix", "--stdin-filename", "eval.ipynb", "--select", "EL101", cwd=tmp_path, input=raw)
    assert r.returncode == 0, r.stderr
    assert r.stdout == raw.replace("correct = (outputs", "correct += (outputs")
