"""Magics are IPython syntax only where a statement starts (through the real CLI).

The notebooks here are written for these tests: a course-style training loop that
prints with `%` formatting on a continuation line, a notebook full of real magics,
and exercise templates that are truly invalid.
"""
from __future__ import annotations

import json

from conftest import run_cli
from evallint.source import Source


def _notebook(*cells: str) -> str:
    nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    for i, text in enumerate(cells):
        nb["cells"].append({"cell_type": "code", "execution_count": i, "id": f"c{i}", "metadata": {},
                            "outputs": [], "source": text.splitlines(keepends=True)})
    return json.dumps(nb, indent=1) + "\n"


def _check(tmp_path, name: str, raw: str, *extra: str) -> tuple[int, list[dict]]:
    (tmp_path / name).write_text(raw, encoding="utf-8")
    r = run_cli("check", "--no-cache", "--format", "json", *extra, name, cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


COURSE_CELLS = (
    "import torch\nimport torch.nn as nn\n%matplotlib inline",
    "for epoch in range(num_epochs):\n"
    "    for features, targets in train_loader:\n"
    "        cost = criterion(model(features), targets)\n"
    "        cost.backward()\n"
    "        optimizer.step()\n"
    "    print('Epoch: %03d/%03d | Cost: %.4f'\n"
    "          % (epoch + 1, num_epochs, cost))\n"
    "    print('Train accuracy: %.2f%%' %\n"
    "          (compute_accuracy(model, train_loader)))\n",
    # the same cell also holds an evaluation bug: it is analysed, not blanked out
    "hits, seen = 0, 0\n"
    "with torch.no_grad():\n"
    "    for features, targets in test_loader:\n"
    "        preds = model(features).argmax(1)\n"
    "        seen += targets.size(0)\n"
    "        hits = (preds == targets).sum().item()\n"
    "print('Test accuracy: %.2f%%' % (\n"
    "    100.0 * hits / seen))\n",
)


def test_percent_formatting_on_a_continuation_line_is_python(tmp_path):
    code, found = _check(tmp_path, "course.ipynb", _notebook(*COURSE_CELLS))
    assert not [d for d in found if d["code"] == "EL000"], found
    assert [(d["code"], d["cell"], d["line"]) for d in found if d["code"] == "EL101"] == [("EL101", 3, 6)]
    assert code == 1


def test_backslash_and_triple_quoted_strings_are_not_statement_starts(tmp_path):
    cells = (
        "import torch\n"
        "line = 'loss %.3f | acc %.2f' \\\n"
        "    % (loss, acc)\n"
        "usage = '''\n"
        "!not a shell command, part of the text\n"
        "%not a magic either\n"
        "'''\n"
        "ratio = (a\n"
        "         != b)\n",
    )
    code, found = _check(tmp_path, "strings.ipynb", _notebook(*cells))
    assert found == [] and code == 0
    src = Source.from_text(_notebook(*cells), "strings.ipynb", notebook=True)
    assert "    % (loss, acc)" in src.text and "!not a shell command" in src.text
    assert "%not a magic either" in src.text and "         != b)" in src.text
    assert src.masked_lines == frozenset()


def test_real_magics_are_still_masked(tmp_path):
    cells = (
        "%load_ext autoreload\n%autoreload 2\n!pip install -q torch\nimport torch",
        "%%time\nfor epoch in range(2):\n    %time step()\n    print('epoch %d'\n          % epoch)",
        "%%bash\nnvidia-smi\nls -la data/",
        "files = !ls data\nmodel?\ntorch.nn.Linear??\n!echo one \\\n  two",
        "def f(x):\n    %timeit x + 1\n    return x",
    )
    code, found = _check(tmp_path, "magics.ipynb", _notebook(*cells))
    assert found == [] and code == 0, found
    src = Source.from_text(_notebook(*cells), "magics.ipynb", notebook=True)
    lines = src.text.split("\n")
    assert lines[0] == "#load_ext autoreload" and lines[2] == "#pip install -q torch"
    assert "          % epoch)" in lines  # inside the %%time body: the operator, not a magic
    assert "  #wo" in lines               # a backslash-continued shell command goes on


def test_unfilled_exercise_templates_stay_syntax_errors(tmp_path):
    cells = (
        "import torch",
        "# YOUR CODE HERE\nlearning_rate = \n",
        "def accuracy(preds, labels):\n    # TODO: return the fraction of correct predictions\n",
        "print('lr %.3f'\n      % learning_rate)",
    )
    code, found = _check(tmp_path, "exercise.ipynb", _notebook(*cells))
    assert code == 1
    assert sorted((d["code"], d["cell"]) for d in found) == [("EL000", 2), ("EL000", 3)], found
