"""Run the real `evallint` CLI over the fixtures corpus and compare with the expectations.

The corpus and its format are described in fixtures/README.md. Every fixture is its own
test case. The CLI runs in a subprocess (`python -m evallint`), on a copy of the fixture
in a temporary folder, so that no configuration or cache of the repository applies.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BUGGY = FIXTURES / "buggy"
CLEAN = FIXTURES / "clean"
BAD_INPUT = FIXTURES / "bad_input"

SELECT = ["--select", "EL"]
TIMEOUT = 120


# ----------------------------------------------------------------------------- helpers

def _is_fixture_source(path: Path) -> bool:
    return path.suffix in (".py", ".ipynb") and ".fixed." not in path.name


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _is_fixture_source(p))


def _expected_path(src: Path) -> Path:
    return src.with_name(src.stem + ".expected.json")


def _fixed_path(src: Path) -> Path:
    return src.with_name(src.stem + ".fixed" + src.suffix)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evallint", *args],
        cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
        encoding="utf-8", errors="replace",
    )


def _no_traceback(proc: subprocess.CompletedProcess) -> None:
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback (most recent call last)" not in stream, (
            f"evallint crashed:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


def _check_json(paths: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    proc = _run(["check", "--no-cache", "--format", "json", *SELECT, *paths], cwd)
    _no_traceback(proc)
    try:
        findings = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:  # pragma: no cover - reported as a failure
        pytest.fail(f"`evallint check --format json` did not print JSON ({exc}):\n"
                    f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    assert isinstance(findings, list), findings
    return proc, findings


def _key(d: dict) -> tuple:
    return (d.get("cell") or 0, d["line"], d["column"], d["code"])


def _positions(findings: list[dict]) -> list[tuple]:
    return sorted(_key(f) for f in findings)


def _copy(src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / src.name
    shutil.copyfile(src, dest)
    return dest


def _show(findings: list[dict]) -> str:
    return "\n".join(f"  {f['code']} cell={f.get('cell')} {f['line']}:{f['column']} {f.get('message', '')}"
                     for f in findings) or "  (none)"


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


BUGGY_SOURCES = _sources(BUGGY)
CLEAN_SOURCES = _sources(CLEAN)
BAD_SOURCES = _sources(BAD_INPUT)


# ----------------------------------------------------------------------------- corpus sanity

def test_corpus_is_complete():
    assert len(BUGGY_SOURCES) >= 10 and len(CLEAN_SOURCES) >= 10 and len(BAD_SOURCES) >= 3
    for src in BUGGY_SOURCES:
        assert _expected_path(src).is_file(), f"{src.name} has no expectation file"
        assert _fixed_path(src).is_file(), f"{src.name} has no fixed file"
        expected = json.loads(_expected_path(src).read_text("utf-8"))
        assert expected, f"{src.name}: a buggy fixture must expect at least one finding"
        for e in expected:
            assert set(e) <= {"code", "line", "column", "cell", "fixable"}, e
            assert (src.suffix == ".ipynb") == ("cell" in e), e
    for src in CLEAN_SOURCES:
        assert not _expected_path(src).exists(), f"clean fixture {src.name} has an expectation file"
    for src in BAD_SOURCES:
        assert _expected_path(src).is_file(), f"{src.name} has no expectation file"


# ----------------------------------------------------------------------------- buggy fixtures

@pytest.mark.parametrize("src", BUGGY_SOURCES, ids=_ids(BUGGY_SOURCES))
def test_buggy_findings(src: Path, tmp_path: Path):
    expected = json.loads(_expected_path(src).read_text("utf-8"))
    path = _copy(src, tmp_path)
    proc, findings = _check_json([path.name], tmp_path)
    assert proc.returncode == 1, f"exit status {proc.returncode}, expected 1\n{proc.stderr}"
    assert all(f["path"] == path.name for f in findings), findings
    for f in findings:
        if src.suffix == ".ipynb":
            assert isinstance(f["cell"], int), f
        else:
            assert f["cell"] is None, f
    assert _positions(findings) == _positions(expected), (
        f"{src.name}\nexpected:\n{_show(sorted(expected, key=_key))}\n"
        f"got:\n{_show(sorted(findings, key=_key))}")
    # A finding marked fixable=false must come without a fix; every other must carry one.
    by_pos = {_key(f): f for f in findings}
    for e in expected:
        has_fix = by_pos[_key(e)]["fix"] is not None
        assert has_fix == e.get("fixable", True), (
            f"{src.name} {e['code']} {e['line']}:{e['column']}: fix is {by_pos[_key(e)]['fix']}")


@pytest.mark.parametrize("src", BUGGY_SOURCES, ids=_ids(BUGGY_SOURCES))
def test_buggy_fix_matches_fixed_file(src: Path, tmp_path: Path):
    path = _copy(src, tmp_path)
    proc = _run(["fix", "--no-cache", "--unsafe-fixes", *SELECT, path.name], tmp_path)
    _no_traceback(proc)
    assert proc.returncode in (0, 1), f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    want = _fixed_path(src).read_bytes()
    got = path.read_bytes()
    if got != want:
        import difflib
        diff = "".join(difflib.unified_diff(
            want.decode("latin-1").splitlines(keepends=True),
            got.decode("latin-1").splitlines(keepends=True),
            fromfile=_fixed_path(src).name, tofile=f"{src.name} after fix"))
        pytest.fail(f"the fixed file differs from {_fixed_path(src).name}:\n{diff}\n"
                    f"(first bytes: want {want[:8]!r}, got {got[:8]!r})")

    # Idempotent: a second run changes nothing.
    proc2 = _run(["fix", "--no-cache", "--unsafe-fixes", *SELECT, path.name], tmp_path)
    _no_traceback(proc2)
    assert path.read_bytes() == want, "a second `evallint fix` changed the file again"

    # What is left are exactly the findings that have no fix.
    expected = json.loads(_expected_path(src).read_text("utf-8"))
    left_expected = Counter(e["code"] for e in expected if not e.get("fixable", True))
    _, left = _check_json([path.name], tmp_path)
    assert Counter(f["code"] for f in left) == left_expected, _show(left)


@pytest.mark.parametrize("src", BUGGY_SOURCES, ids=_ids(BUGGY_SOURCES))
def test_buggy_fixed_file_as_committed(src: Path, tmp_path: Path):
    """The hand-written fixed file itself reports only the unfixable findings."""
    fixed = _fixed_path(src)
    dest = tmp_path / (src.stem + src.suffix)
    shutil.copyfile(fixed, dest)
    expected = json.loads(_expected_path(src).read_text("utf-8"))
    left_expected = Counter(e["code"] for e in expected if not e.get("fixable", True))
    _, findings = _check_json([dest.name], tmp_path)
    assert Counter(f["code"] for f in findings) == left_expected, _show(findings)


# ----------------------------------------------------------------------------- clean fixtures

@pytest.mark.parametrize("src", CLEAN_SOURCES, ids=_ids(CLEAN_SOURCES))
def test_clean_has_no_findings(src: Path, tmp_path: Path):
    path = _copy(src, tmp_path)
    proc, findings = _check_json([path.name], tmp_path)
    assert findings == [], f"{src.name} must be clean, got:\n{_show(findings)}"
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stderr}"


@pytest.mark.parametrize("src", CLEAN_SOURCES, ids=_ids(CLEAN_SOURCES))
def test_clean_fix_changes_nothing(src: Path, tmp_path: Path):
    path = _copy(src, tmp_path)
    proc = _run(["fix", "--no-cache", "--unsafe-fixes", *SELECT, path.name], tmp_path)
    _no_traceback(proc)
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert path.read_bytes() == src.read_bytes()


# ----------------------------------------------------------------------------- bad input

def _matches(finding: dict, expected: dict) -> bool:
    return all(finding.get(k) == v for k, v in expected.items())


@pytest.mark.parametrize("src", BAD_SOURCES, ids=_ids(BAD_SOURCES))
def test_bad_input_is_reported_and_others_still_checked(src: Path, tmp_path: Path):
    expected = json.loads(_expected_path(src).read_text("utf-8"))
    bad = _copy(src, tmp_path)
    # A buggy and a clean file in the same run must still be checked.
    other = _copy(BUGGY / "tabular_mlp_accumulator.py", tmp_path)
    clean = _copy(CLEAN / "mnist_pytorch_examples.py", tmp_path)
    proc, findings = _check_json([bad.name, other.name, clean.name], tmp_path)
    assert proc.returncode == 1, f"exit status {proc.returncode}, expected 1\n{proc.stderr}"

    on_bad = [f for f in findings if f["path"] == bad.name]
    assert len(on_bad) == len(expected), _show(on_bad)
    for e in expected:
        assert any(_matches(f, e) for f in on_bad), f"expected {e}, got:\n{_show(on_bad)}"
    for f in on_bad:
        assert f["message"].strip(), f
        assert f["severity"] == "error", f
        assert f["fix"] is None, f

    other_expected = json.loads(_expected_path(BUGGY / other.name).read_text("utf-8"))
    on_other = [f for f in findings if f["path"] == other.name]
    assert _positions(on_other) == _positions(other_expected), _show(on_other)
    assert not [f for f in findings if f["path"] == clean.name]


@pytest.mark.parametrize("src", BAD_SOURCES, ids=_ids(BAD_SOURCES))
def test_bad_input_human_output_and_fix_do_not_crash(src: Path, tmp_path: Path):
    bad = _copy(src, tmp_path)
    before = bad.read_bytes()
    proc = _run(["check", "--no-cache", *SELECT, bad.name], tmp_path)
    _no_traceback(proc)
    assert proc.returncode == 1, f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    code = json.loads(_expected_path(src).read_text("utf-8"))[0]["code"]
    assert code in proc.stdout + proc.stderr
    proc = _run(["fix", "--no-cache", "--unsafe-fixes", *SELECT, bad.name], tmp_path)
    _no_traceback(proc)
    assert proc.returncode == 1, f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert bad.read_bytes() == before, "fix must never write a file it cannot read or parse"
