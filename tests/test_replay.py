"""`evallint replay`: regions cut from real fixtures, run with real torch on the CPU.

All fixtures are replayed by one child process (module fixture), as the CLI would
batch them, so torch starts once for the whole module.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evallint.config import load_settings
from evallint.engine import lint_source
from evallint.registry import load_rules
from evallint.replay import region as region_mod
from evallint.replay import render, replay_diagnostics, replay_sources
from evallint.replay.region import RegionError, cut_region
from evallint.replay.report import CONFIRMED, NOT_REPLAYABLE, NOT_REPRODUCED
from evallint.source import Source

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "replay"

# The probes the seed rules opt into (proposed `replay_probe` class attribute). Used
# only where a rule class does not declare its own yet.
SEED_PROBES = {"EL101": "metric", "EL102": "metric", "EL201": "mode", "EL202": "grad",
               "EL204": ("mode", "grad"), "EL301": "metric", "EL302": "overlap"}


class _WithProbes:
    def __init__(self, rules) -> None:
        self.rules = rules

    def __getattr__(self, name):
        return getattr(self.rules, name)

    def get(self, code):
        cls = self.rules.get(code)
        if cls is None or getattr(cls, "replay_probe", None):
            return cls
        return type(cls.__name__, (cls,), {"replay_probe": SEED_PROBES.get(cls.code)})


@pytest.fixture(scope="module")
def rules():
    return _WithProbes(load_rules())


def _lint(path: Path, rules):
    source = Source.read(str(path))
    settings = load_settings(path, None, rules=rules.rules)
    return source, lint_source(source, settings, rules.rules).diagnostics


@pytest.fixture(scope="module")
def reports(rules):
    pytest.importorskip("torch")
    items = [_lint(p, rules) for p in sorted(FIXTURES.glob("*.py"))]
    out = replay_sources(items, rules, device="cpu", seed=0)
    return {Path(r.path).name: r for r in out}


def _row(report, code):
    rows = [f for f in report.findings if f.code == code]
    assert rows, f"no {code} row in {report.path}: {report.findings}"
    return rows[0]


# --- seed rules, values asserted --------------------------------------------------

def test_el101_last_batch_only(reports):
    rep = reports["el101_last_batch.py"]
    row = _row(rep, "EL101")
    assert row.verdict == CONFIRMED
    assert row.metric == "100 * correct / total"
    assert row.truth_value == pytest.approx(73.0)
    assert row.fixed_value == pytest.approx(73.0)
    # Only the short last batch is counted (the stand-in loader batches like the
    # script's, batch_size=128: 104 of 1000 samples): at most 10.4%.
    assert 0 < row.written_value <= 100 * (1000 % 128) / 1000
    assert rep.device == "cpu" and rep.exit_code == 1


def test_el102_off_by_ten_thousand(reports):
    row = _row(reports["el102_percent.py"], "EL102")
    assert row.verdict == CONFIRMED
    assert row.truth_value == pytest.approx(73.0)
    assert row.fixed_value == pytest.approx(row.truth_value)
    assert row.written_value == pytest.approx(row.truth_value / 1e4)


def test_el201_passes_differ_until_eval(reports):
    row = _row(reports["el201_no_eval.py"], "EL201")
    assert row.verdict == CONFIRMED and row.probe == "mode"
    assert row.written_value > 0          # max |Δ| between two passes over the same data
    assert row.fixed_value == 0
    assert "train mode" in row.written and "eval mode" in row.fixed
    assert row.truth_value == pytest.approx(73.0)


def test_el202_outputs_require_grad_until_no_grad(reports):
    row = _row(reports["el202_no_grad.py"], "EL202")
    assert row.verdict == CONFIRMED and row.probe == "grad"
    assert row.written == "requires_grad=True" and row.fixed == "requires_grad=False"


def test_el204_bare_eval(reports):
    row = _row(reports["el204_bare_eval.py"], "EL204")
    assert row.verdict == CONFIRMED
    assert row.fixed_value == 0 and row.written_value > 0


def test_el301_says_no_numeric_change(reports):
    row = _row(reports["el301_dead_reshape.py"], "EL301")
    assert row.verdict == NOT_REPRODUCED
    assert "changes no value" in row.reason
    assert row.written_value == row.fixed_value == pytest.approx(row.truth_value)
    assert reports["el301_dead_reshape.py"].exit_code == 0


def test_el302_overlap_from_literals(reports):
    row = _row(reports["el302_same_source.py"], "EL302")
    assert row.verdict == CONFIRMED and row.probe == "overlap"
    assert row.written_value == pytest.approx(1.0)


def test_full_batch_evaluation_inside_the_epoch_loop(reports):
    """The bug report's shape: a full-batch binary classifier scored inside the training
    epoch loop, no loader. Replay measures the flagged accuracy, not the training loss."""
    row = _row(reports["el102_fullbatch_in_epoch_loop.py"], "EL102")
    assert row.verdict == CONFIRMED and row.metric == "accuracy"
    assert row.truth_value == pytest.approx(73.0)
    assert row.fixed_value == pytest.approx(73.0)
    assert row.written_value == pytest.approx(73.0 / 1e4)


def test_two_bugs_one_metric_are_attributed(reports):
    rep = reports["el101_el102_shared_metric.py"]
    el101, el102 = _row(rep, "EL101"), _row(rep, "EL102")
    for row in (el101, el102):
        assert row.verdict == CONFIRMED and row.metric == "accuracy"
        assert row.together_value == pytest.approx(73.0) == row.truth_value
        assert "fixed as well" in row.reason and "= truth" in row.reason
    # Each fix alone moves the value towards the truth, by its own factor.
    assert el101.fixed_value == pytest.approx(0.0073)
    assert el102.fixed_value == pytest.approx(el101.written_value * 1e4)
    assert "EL101 alone" in el101.reason and "with EL102 fixed as well" in el101.reason


def test_setup_only_names_get_stand_ins(reports):
    """A fitted scaler and the epoch counter are defined by skipped set-up code."""
    row = _row(reports["el102_setup_names.py"], "EL102")
    assert row.verdict == CONFIRMED
    assert row.fixed_value == pytest.approx(73.0)


def test_torchvision_datasets_are_keyed_by_split(reports):
    row = _row(reports["el302_torchvision_split.py"], "EL302")
    assert row.verdict == CONFIRMED and row.probe == "overlap"
    assert row.written_value == pytest.approx(1.0)
    assert row.fixed_value == pytest.approx(0.0)  # train=False: other samples


def test_file_backed_datasets_are_keyed_by_construction(reports):
    row = _row(reports["el302_own_dataset.py"], "EL302")
    assert row.verdict == CONFIRMED and row.written_value == pytest.approx(1.0)
    assert "keyed by how each set is built" in row.reason


def test_el203_training_steps_in_eval_mode(reports):
    """After the first validation pass, every training step runs in eval mode."""
    row = _row(reports["el203_eval_not_undone.py"], "EL203")
    assert row.verdict == CONFIRMED and row.probe == "train_mode"
    assert row.written_value > 0 and row.fixed_value == 0


def test_el205_evaluation_changes_parameters(reports):
    row = _row(reports["el205_step_in_eval.py"], "EL205")
    assert row.verdict == CONFIRMED and row.probe == "params"
    assert row.written == "parameters changed"


def test_not_replayable_names_the_reason(reports):
    row = _row(reports["not_replayable.py"], "EL101")
    assert row.verdict == NOT_REPLAYABLE and "`self`" in row.reason
    assert reports["not_replayable.py"].exit_code == 0


# --- rendering ----------------------------------------------------------------------

def test_text_and_json_render(reports):
    rep = reports["el101_last_batch.py"]
    text = render(rep, "text")
    for col in ("rule", "line", "metric", "as written", "after fix", "ground truth", "verdict", "device: cpu"):
        assert col in text
    data = json.loads(render(rep, "json"))
    assert data["device"] == "cpu" and data["confirmed"] == 1
    f = data["findings"][0]
    for key in ("code", "line", "metric", "written", "fixed", "truth", "verdict", "reason",
                "written_value", "fixed_value", "truth_value"):
        assert key in f
    assert f["verdict"] == "confirmed"


# --- device and torch handling --------------------------------------------------------

def test_cuda_requested_without_gpu_is_a_clear_error(rules):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    source, diags = _lint(FIXTURES / "el101_last_batch.py", rules)
    rep = replay_diagnostics(source, diags, rules, device="cuda", seed=0)
    assert rep.exit_code == 2
    assert "--device cuda" in rep.error and "no CUDA" in rep.error
    assert "--device cuda" in render(rep, "text")


def test_missing_torch_gives_install_hint(rules, monkeypatch):
    from evallint.replay import run

    monkeypatch.setattr(run, "torch_available", lambda: False)
    source, diags = _lint(FIXTURES / "el101_last_batch.py", rules)
    rep = replay_diagnostics(source, diags, rules, device="cpu")
    assert rep.exit_code == 2 and 'pip install "evallint[runtime]"' in rep.error


def test_static_linter_never_imports_torch():
    code = ("import sys, evallint.replay, evallint.runtime, evallint.replay.run, evallint.replay.region, "
            "evallint.replay.probes, evallint.replay.render, evallint.replay.standins, evallint.replay.harness, "
            "evallint.runtime.guard, evallint.runtime.overlap, evallint.runtime.fingerprint\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_child_runs_every_kind_of_job_without_the_cutter(rules, monkeypatch, tmp_path):
    """The child imports only what runs the jobs: never the cutter, nor libcst."""
    pytest.importorskip("torch")
    from evallint.replay import run as run_mod
    from evallint.replay.child import ChildResult
    from evallint.replay.harness import MARK

    jobs: list = []

    class Capture:  # stands in for the child: keeps the jobs the parent prepared
        def run(self, given, device, seed, time_limit):
            jobs.extend(given)
            return ChildResult()

    monkeypatch.setattr(run_mod, "Child", Capture)
    names = ["el101_last_batch.py", "el207_functional_dropout.py", "el401_binary_f1_variable.py",
             "el302_own_dataset.py", "el203_eval_not_undone.py"]
    replay_sources([_lint(FIXTURES / n, rules) for n in names], rules, device="cpu")
    assert {j["kind"] for j in jobs} == {"region", "module", "logged", "datasets"}
    code = ("import runpy, sys\nharness = sys.argv[1]\nsys.argv = [harness]\n"
            "try:\n    runpy.run_path(harness, run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('parent modules:', sorted(m for m in sys.modules if m.split('.')[0] == 'libcst'"
            " or m in ('evallint.replay.region', 'evallint.replay.tree', 'evallint.replay.modules')))")
    request = json.dumps({"jobs": jobs, "device": "cpu", "seed": 0, "time_limit": 20})
    out = subprocess.run([sys.executable, "-I", "-c", code, str(ROOT / "evallint" / "replay" / "harness.py")],
                         input=request, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    results = [json.loads(line[len(MARK):]) for line in out.stdout.splitlines() if line.startswith(MARK)]
    ran = [r for r in results if "id" in r]
    assert len(ran) == len(jobs) and not [r for r in ran if "error" in r], out.stdout[-2000:]
    assert out.stdout.splitlines()[-1] == "parent modules: []"


def test_a_child_started_early_and_given_no_jobs_is_stopped():
    from evallint.replay.child import Child

    child = Child()  # as `evallint replay` starts it, before linting
    scratch = Path(child._scratch.name)
    assert scratch.is_dir()
    child.close()
    assert child._proc.poll() is not None and not scratch.exists()


# --- the cutter (no torch needed) -------------------------------------------------------

def test_region_keeps_init_loop_and_metric_and_skips_file_io():
    text = (FIXTURES / "el101_last_batch.py").read_text()
    reg = cut_region(text, 23)
    assert "correct = 0" in reg.code and "total = 0" in reg.code and "with torch.no_grad():" in reg.code
    assert "model.eval()" in reg.code and "print(" in reg.code
    assert "torch.load" not in reg.code and "ResNet18" not in reg.code and "DataLoader(" not in reg.code
    assert reg.roles == {"model": "model", "device": "device", "test_loader": "loader"}
    assert reg.metric.label == "100 * correct / total"


def test_region_without_loop_and_return_rewrite():
    reg = cut_region((FIXTURES / "el102_percent.py").read_text(), 25)
    assert reg.roles["test_X"] == "inputs" and reg.roles["test_Y"] == "labels"
    reg = cut_region((FIXTURES / "el201_no_eval.py").read_text(), 24)
    assert f"{region_mod.RETURN_NAME} = " in reg.code
    assert not any(line.lstrip().startswith("return") for line in reg.code.splitlines())


def test_with_header_anchor():
    reg = cut_region("import torch\nwith torch.no_grad:\n    out = model(x)\n", 2)
    assert reg.code.startswith("with torch.no_grad:")
    assert reg.roles == {"model": "model", "x": "inputs"}


def test_cutting_rule_examples_never_crashes(rules):
    """Every INVALID example of every rule either cuts or says why; nothing else."""
    for cls in rules.rules.all():
        for ex in cls.INVALID:
            try:
                cut_region(ex.source, ex.line)
            except RegionError as exc:
                assert str(exc)
