"""What a warm run re-analyses, observed through the real CLI's `--verbose` count (never
a timing): nothing when nothing changed, the changed file alone, and, when a module
that others import changes what it tells them, those importers too."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from conftest import run_cli

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PADDING = "import torch\n\n\ndef scale_{i}(x):\n    return torch.relu(x) * {i}\n"


def _project(tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(FIXTURES / "project_buggy", dest)
    (dest / "pyproject.toml").write_text("[tool.evallint]\n")
    for i in range(3):
        (dest / f"pad_{i}.py").write_text(PADDING.format(i=i))
    return dest


def _check(folder: Path, cache: Path, *args: str) -> tuple[tuple[int, int, int], list[tuple]]:
    r = run_cli("check", "--format", "json", "--exit-zero", "--verbose", "--cache-dir", cache, *args, ".",
                cwd=folder)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    m = re.search(r"checked (\d+) of (\d+) files, (\d+) from the cache", r.stderr)
    assert m, r.stderr
    found = sorted((d["path"], d["line"], d["code"], d["message"]) for d in json.loads(r.stdout))
    return tuple(int(g) for g in m.groups()), found


def test_unchanged_run_reads_every_file_from_the_cache(tmp_path):
    folder, cache = _project(tmp_path), tmp_path / "cache"
    counts, cold = _check(folder, cache)
    assert counts == (6, 6, 0) and cold
    counts, warm = _check(folder, cache)
    assert counts == (0, 6, 6)
    assert warm == cold


def test_one_changed_file_is_the_only_one_analysed(tmp_path):
    folder, cache = _project(tmp_path), tmp_path / "cache"
    _, before = _check(folder, cache)
    # A finding appears in the changed file: the re-check really ran on it.
    (folder / "pad_1.py").write_text(PADDING.format(i=1) + (
        "\n\ndef accuracy(model, loader):\n    correct = 0\n    for x, y in loader:\n"
        "        correct += (model(x).argmax(1) == y).sum().item()\n    return correct / len(loader)\n"))
    counts, after = _check(folder, cache)
    assert counts == (1, 6, 5)
    assert [f for f in after if f[0] != "pad_1.py"] == [f for f in before if f[0] != "pad_1.py"]
    assert any(f[0] == "pad_1.py" for f in after) and not any(f[0] == "pad_1.py" for f in before)


def test_a_changed_imported_module_rechecks_its_importers(tmp_path):
    folder, cache = _project(tmp_path), tmp_path / "cache"
    _, before = _check(folder, cache)
    # Without dropout and batch norm the model no longer depends on its mode: what
    # models.py tells train.py changes, so train.py is analysed again; the padding is not.
    models = folder / "models.py"
    text = models.read_text()
    text = re.sub(r"nn\.BatchNorm2d\(\d+\), ", "", text).replace("nn.Dropout(0.5), ", "")
    models.write_text(text)
    counts, after = _check(folder, cache)
    # models.py and train.py, which imports it. utils.py's helper reads no module: its
    # cached findings are judged again against its callers' new summaries, unanalysed.
    assert counts == (2, 6, 4)
    # The finding that relied on the model class is gone or reworded: train.py was re-judged.
    train_before = [f for f in before if f[0] == "train.py"]
    train_after = [f for f in after if f[0] == "train.py"]
    assert train_before != train_after
    # And a fresh run without the cache agrees with the warm one.
    r = run_cli("check", "--format", "json", "--exit-zero", "--no-cache", ".", cwd=folder)
    assert sorted((d["path"], d["line"], d["code"], d["message"]) for d in json.loads(r.stdout)) == after
