"""Project facts across modules, through the real CLI: a model class in models.py, a
helper in utils.py, the loop in train.py (fixtures/project_*), in parallel and with
the cache; import forms; notebooks importing the tree."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BUGGY_EXPECTED = [("train.py", 29, 18, "EL201"), ("utils.py", 8, 18, "EL201"), ("utils.py", 8, 18, "EL202")]
# Plain modules that pad the run so that --jobs 2 really starts two workers.
PADDING = "def helper_{i}(values):\n    return sorted(values)[:{i}]\n"


def _project(name: str, tmp_path: Path, pad: bool = False) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest)
    (dest / "pyproject.toml").write_text("[tool.evallint]\n")
    if pad:
        for i in range(6):
            (dest / f"pad_{i}.py").write_text(PADDING.format(i=i))
    return dest


def _check(folder: Path, *args: str) -> tuple[int, list[tuple]]:
    r = run_cli("check", "--format", "json", "--select", "EL", *args, ".", cwd=folder)
    assert "Traceback" not in r.stderr, r.stderr
    found = json.loads(r.stdout)
    return r.returncode, sorted((d["path"], d["line"], d["column"], d["code"]) for d in found)


def _messages(folder: Path, *args: str) -> dict[tuple, str]:
    r = run_cli("check", "--format", "json", "--select", "EL", *args, ".", cwd=folder)
    return {(d["path"], d["code"]): d["message"] for d in json.loads(r.stdout)}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_buggy_project(tmp_path, jobs):
    folder = _project("project_buggy", tmp_path, pad=True)
    code, found = _check(folder, "--no-cache", "--jobs", jobs)
    assert found == BUGGY_EXPECTED and code == 1
    # the class is resolved in models.py: "has", not "may have"
    assert "has dropout/batch-norm" in _messages(folder, "--no-cache")[("train.py", "EL201")]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_clean_project(tmp_path, jobs):
    folder = _project("project_clean", tmp_path, pad=True)
    code, found = _check(folder, "--no-cache", "--jobs", jobs)
    assert found == [] and code == 0


def test_each_file_alone_is_judged_without_the_others(tmp_path):
    """The same helper, checked without its callers, is reported as before."""
    folder = _project("project_clean", tmp_path)
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL", "utils.py", cwd=folder)
    assert sorted(d["code"] for d in json.loads(r.stdout)) == ["EL201", "EL202"]


def test_cache_follows_the_summaries_a_file_read(tmp_path):
    folder = _project("project_clean", tmp_path)
    assert _check(folder) == (0, [])
    assert _check(folder) == (0, [])  # from the cache
    assert any((folder / ".evallint_cache").rglob("*.json"))
    # PlainMLP gains dropout: train.py's loop over it (no eval()) is now a bug
    models = folder / "models.py"
    models.write_text(models.read_text().replace(
        "nn.Linear(n_in, n_hidden), nn.ReLU(),", "nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Dropout(0.2),"))
    code, found = _check(folder)
    assert [(p, c) for p, _, _, c in found] == [("train.py", "EL201")] and code == 1
    # the caller stops switching to eval mode: the helper in utils.py is reported again
    train = folder / "train.py"
    train.write_text(train.read_text().replace("regularised = regularised.eval()\n", ""))
    code, found = _check(folder)
    assert [(p, c) for p, _, _, c in found] == [("train.py", "EL201"), ("utils.py", "EL201")]


def test_fix_leaves_a_helper_whose_callers_are_right_alone(tmp_path):
    folder = _project("project_clean", tmp_path)
    before = {p.name: p.read_bytes() for p in folder.glob("*.py")}
    r = run_cli("fix", "--no-cache", "--unsafe-fixes", "--select", "EL", ".", cwd=folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert {p.name: p.read_bytes() for p in folder.glob("*.py")} == before
    buggy = _project("project_buggy", tmp_path)
    r = run_cli("fix", "--no-cache", "--unsafe-fixes", "--select", "EL", ".", cwd=buggy)
    assert "Traceback" not in r.stderr
    assert _check(buggy, "--no-cache") == (0, [])
    assert "model.eval()" in (buggy / "utils.py").read_text()


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


LAYERS = {
    "plain": "nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)",
    "dropout": "nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 2)",
}
EVAL_LOOP = """
    with torch.no_grad():
        for x, y in test_loader:
            scores = {call}(x)
"""


def _package(layers: str) -> dict[str, str]:
    return {
        "pyproject.toml": "[tool.evallint]\n",
        "pkg/__init__.py": "from .nets import Net as PublicNet\n",
        "pkg/nets.py": f"""
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = nn.Sequential({layers})

                def forward(self, x):
                    return self.body(x)

            def build():
                return Net()
            """,
    }


IMPORT_FORMS = {
    "relative": ("pkg/run.py", "from .nets import Net", "Net()"),
    "absolute": ("run.py", "from pkg.nets import Net", "Net()"),
    "module alias": ("run.py", "import pkg.nets as nets", "nets.Net()"),
    "from package import module": ("run.py", "from pkg import nets", "nets.Net()"),
    "star": ("run.py", "from pkg.nets import *", "Net()"),
    "re-export": ("run.py", "from pkg import PublicNet", "PublicNet()"),
    "factory": ("run.py", "from pkg.nets import build", "build()"),
}


@pytest.mark.parametrize("form", sorted(IMPORT_FORMS))
@pytest.mark.parametrize("layers", sorted(LAYERS))
def test_import_forms_resolve_the_class(tmp_path, form, layers):
    path, import_line, build = IMPORT_FORMS[form]
    files = _package(LAYERS[layers])
    files[path] = f"import torch\n{import_line}\n\nclf = {build}\n" + textwrap.dedent(EVAL_LOOP).format(call="clf")
    _write(tmp_path, files)
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL201", ".", cwd=tmp_path)
    found = [(d["path"], d["code"], d["message"]) for d in json.loads(r.stdout)]
    if layers == "plain":
        assert found == []
    else:
        assert [(p, c) for p, c, _ in found] == [(path, "EL201")]
        assert "has dropout/batch-norm" in found[0][2]


def test_an_imported_helper_that_switches_to_eval_mode(tmp_path):
    _write(tmp_path, _package(LAYERS["dropout"]) | {
        "helpers.py": """
            def prepare_for_eval(model):
                model.eval()
                return model
            """,
        "run.py": """
            import torch
            from pkg.nets import Net
            from helpers import prepare_for_eval

            model = Net()
            prepare_for_eval(model)
            with torch.no_grad():
                for x, y in test_loader:
                    out = model(x)
            """,
    })
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL201", ".", cwd=tmp_path)
    assert json.loads(r.stdout) == []


def test_a_notebook_imports_the_tree(tmp_path):
    _write(tmp_path, _package(LAYERS["plain"]))
    cells = ["import torch\nfrom pkg.nets import Net", "clf = Net()",
             "with torch.no_grad():\n    for x, y in test_loader:\n        out = clf(x)"]
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                     "source": c.splitlines(keepends=True)} for c in cells],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "explore.ipynb").write_text(json.dumps(nb))
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL201", ".", cwd=tmp_path)
    assert json.loads(r.stdout) == []
    (tmp_path / "pkg/nets.py").write_text((tmp_path / "pkg/nets.py").read_text().replace(
        LAYERS["plain"], LAYERS["dropout"]))
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL201", ".", cwd=tmp_path)
    assert [(d["path"], d["cell"], d["line"]) for d in json.loads(r.stdout)] == [("explore.ipynb", 3, 3)]


def test_each_helper_is_judged_by_its_own_callers(tmp_path):
    """Two helpers in one module: the one whose caller switches to eval mode under
    no_grad is clean, the other one is still reported (twice, as in one file)."""
    _write(tmp_path, _package(LAYERS["dropout"]) | {
        "scoring.py": """
            import torch

            def evaluate_top1(model, loader):
                hits = 0
                for x, y in loader:
                    hits += (model(x).argmax(1) == y).sum().item()
                return hits

            def evaluate_loss(model, loader, criterion):
                total = 0.0
                for x, y in loader:
                    total += criterion(model(x), y).item()
                return total
            """,
        "run.py": """
            import torch
            from pkg.nets import Net
            from scoring import evaluate_top1, evaluate_loss

            model = Net()
            model.eval()
            with torch.no_grad():
                top1 = evaluate_top1(model, val_loader)
            model.train()
            loss = evaluate_loss(model, val_loader, torch.nn.CrossEntropyLoss())
            """,
    })
    r = run_cli("check", "--no-cache", "--format", "json", "--select", "EL2", ".", cwd=tmp_path)
    found = sorted((d["path"], d["line"], d["code"]) for d in json.loads(r.stdout))
    assert found == [("scoring.py", 12, "EL201"), ("scoring.py", 12, "EL202")]
