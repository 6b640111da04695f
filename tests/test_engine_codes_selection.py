"""Syntax and read errors are reported whatever the rule selection (as ruff does),
unless EL000/EL001 are ignored explicitly. Through the real CLI."""
from __future__ import annotations

import json

from conftest import run_cli

BROKEN = "import torch\nfor epoch in range(3)\n    train(model)\n"
BUGGY = ("import torch\ncorrect = 0\nwith torch.no_grad():\n    for x, y in test_loader:\n"
         "        correct = (model(x).argmax(1) == y).sum().item()\nprint(correct)\n")
LATIN1 = "# r\xe9sum\xe9 des r\xe9sultats\nimport torch\n".encode("latin-1")


def _codes(r) -> list[tuple[str, str]]:
    assert "Traceback" not in r.stderr, r.stderr
    return sorted((d["path"], d["code"]) for d in json.loads(r.stdout))


def _files(tmp_path):
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "buggy.py").write_text(BUGGY)
    (tmp_path / "latin.py").write_bytes(LATIN1)


def test_select_a_rule_still_reports_syntax_and_read_errors(tmp_path):
    _files(tmp_path)
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL101", ".", cwd=tmp_path)
    assert _codes(r) == [("broken.py", "EL000"), ("buggy.py", "EL101"), ("latin.py", "EL001")]
    assert r.returncode == 1
    # a selected rule that cannot fire anywhere (prefilter) does not hide the error either
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL204", "broken.py", cwd=tmp_path)
    assert _codes(r) == [("broken.py", "EL000")] and r.returncode == 1


def test_explicit_ignore_drops_them(tmp_path):
    _files(tmp_path)
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL101", "--ignore", "EL000,EL001", ".",
                cwd=tmp_path)
    assert _codes(r) == [("buggy.py", "EL101")]
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL101", "--ignore", "EL000",
                "broken.py", cwd=tmp_path)
    assert _codes(r) == [] and r.returncode == 0


def test_config_select_ignore_and_per_file_ignores(tmp_path):
    _files(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.evallint]\nselect = ["EL101"]\n')
    r = run_cli("check", "--no-cache", "--format", "json", ".", cwd=tmp_path)
    assert _codes(r) == [("broken.py", "EL000"), ("buggy.py", "EL101"), ("latin.py", "EL001")]
    (tmp_path / "pyproject.toml").write_text('[tool.evallint]\nselect = ["EL101"]\nignore = ["EL001"]\n')
    r = run_cli("check", "--no-cache", "--format", "json", ".", cwd=tmp_path)
    assert _codes(r) == [("broken.py", "EL000"), ("buggy.py", "EL101")]
    (tmp_path / "pyproject.toml").write_text(
        '[tool.evallint]\nselect = ["EL101"]\nper-file-ignores = {"broken.py" = ["EL000"]}\n')
    r = run_cli("check", "--no-cache", "--format", "json", ".", cwd=tmp_path)
    assert _codes(r) == [("buggy.py", "EL101"), ("latin.py", "EL001")]


def test_a_broken_notebook_cell_counts_under_a_selection(tmp_path):
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 1,
                     "source": ["import torch\n"]},
                    {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 2,
                     "source": ["x = \n"]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL202", "nb.ipynb", cwd=tmp_path)
    assert [(d["code"], d["cell"]) for d in json.loads(r.stdout)] == [("EL000", 2)]


def test_an_empty_selection_is_still_an_error(tmp_path):
    _files(tmp_path)
    r = run_cli("check", "--select", "EL101", "--ignore", "EL101", "buggy.py", cwd=tmp_path)
    assert r.returncode == 2 and "the selection is empty" in r.stderr
