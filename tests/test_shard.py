"""`check --shard K/N` and `evallint merge`, through the real CLI."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from evallint.shard import shard_of

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def _evallint(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evallint", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _check(target: str, fmt: str, cwd: Path, *extra: str) -> str:
    out = _evallint("check", "--format", fmt, "--exit-zero", "--no-cache", *extra, target, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _merged(tmp_path: Path, outputs: list[str], cwd: Path) -> str:
    names = []
    for i, text in enumerate(outputs):
        p = tmp_path / f"shard{i}.out"
        p.write_text(text)
        names.append(str(p))
    out = _evallint("merge", *names, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_shards_partition_the_findings_and_merge_to_the_unsharded_report(tmp_path):
    for fmt in ("json", "sarif"):
        whole = _check("fixtures", fmt, ROOT)
        parts = [_check("fixtures", fmt, ROOT, "--shard", f"{k}/3") for k in (1, 2, 3)]
        if fmt == "json":
            per_shard = [{d["path"] for d in json.loads(p)} for p in parts]
            assert all(per_shard), "each shard of the fixtures reports something"
            assert not (per_shard[0] & per_shard[1] or per_shard[0] & per_shard[2] or per_shard[1] & per_shard[2])
        assert _merged(tmp_path, parts, ROOT) == whole


def test_a_shard_sees_the_modules_of_other_shards_that_its_files_import(tmp_path):
    project = tmp_path / "proj"
    shutil.copytree(FIXTURES / "project_buggy", project)
    root = project.resolve()
    # With two shards the training script and the model module it imports are apart.
    assert shard_of(str(project / "train.py"), root, 2) != shard_of(str(project / "models.py"), root, 2)
    (project / "pyproject.toml").write_text("[tool.evallint]\n")
    whole = _check(".", "json", project)
    alone = _check("train.py", "json", project)
    parts = [_check(".", "json", project, "--shard", f"{k}/2") for k in (1, 2)]
    assert _merged(tmp_path, parts, project) == whole
    train = [d for d in json.loads(whole) if d["path"].endswith("train.py")]
    assert train and json.loads(alone) != train  # the project view changes the finding


def test_the_partition_does_not_depend_on_where_the_tree_is_checked_out(tmp_path):
    listings = []
    for place in ("a/checkout", "b"):
        tree = tmp_path / place
        shutil.copytree(FIXTURES / "buggy", tree / "src")
        (tree / "pyproject.toml").write_text("[tool.evallint]\n")
        listings.append(sorted({d["path"] for d in json.loads(_check("src", "json", tree, "--shard", "2/4"))}))
    assert listings[0] and listings[0] == listings[1]


def test_bad_shard_values_and_fixing_are_refused():
    for value in ("0/2", "3/2", "2", "a/b"):
        out = _evallint("check", "--shard", value, "fixtures/clean", cwd=ROOT)
        assert out.returncode == 2 and "--shard" in out.stderr
    out = _evallint("check", "--fix", "--shard", "1/2", "fixtures/clean", cwd=ROOT)
    assert out.returncode == 2 and "fixes" in out.stderr


def test_a_shard_without_files_reports_nothing_in_a_valid_report():
    target = FIXTURES / "buggy" / "bare_mode_calls.py"
    other = 1 if shard_of(str(target), ROOT.resolve(), 2) == 2 else 2
    out = _evallint("check", "--format", "json", "--no-cache", "--shard", f"{other}/2", str(target), cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
    mine = _evallint("check", "--format", "json", "--no-cache", "--shard", f"{3 - other}/2", str(target), cwd=ROOT)
    assert mine.returncode == 1 and json.loads(mine.stdout)
