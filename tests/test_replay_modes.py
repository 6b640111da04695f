"""`evallint replay` through the real CLI, on real torch tensors: the mode, gradient,
stale-variable and torchmetrics rules are confirmed with the values the run computed,
and replay answers like `check` about selections, unreadable files, notebooks and Keras.

Each fixture is replayed once (module-scoped cache); every run starts a real child
process that imports torch.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
REPLAY = ROOT / "fixtures" / "replay"
BUGGY = ROOT / "fixtures" / "buggy"

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def replayed():
    cache: dict = {}

    def run(path: Path, *extra: str) -> dict:
        key = (str(path), extra)
        if key not in cache:
            r = run_cli("replay", "--device", "cpu", "--format", "json", *extra, str(path), cwd=ROOT, timeout=400)
            assert r.returncode in (0, 1), r.stderr
            cache[key] = {"exit": r.returncode, **json.loads(r.stdout)}
        return cache[key]

    return run


def _row(report: dict, code: str) -> dict:
    rows = [f for f in report["findings"] if f["code"] == code]
    assert rows, f"no {code} row: {report['findings']}"
    return rows[0]


def _close(a, b) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-6)


# --- mode and gradients -------------------------------------------------------------

def test_el203_eval_inside_a_helper_leaves_the_next_epoch_in_eval_mode(replayed):
    rep = replayed(REPLAY / "el203_eval_in_helper.py")
    row = _row(rep, "EL203")
    assert row["verdict"] == "confirmed", row
    # As written the epochs after the first evaluation train with dropout off; fixed, none do.
    assert row["written_value"] > 0 and row["fixed_value"] == 0
    assert f"{int(row['written_value'])} of" in row["written"]
    assert rep["exit"] == 1


def test_el203_in_file_test_function_of_the_buggy_fixture(replayed):
    row = _row(replayed(BUGGY / "quickstart_test_each_epoch.py", "--select", "EL203"), "EL203")
    assert row["verdict"] == "confirmed", row
    assert row["written_value"] > 0 and row["fixed_value"] == 0


def test_el205_that_needs_cuda_says_so_on_a_cpu(replayed):
    row = _row(replayed(REPLAY / "el205_ddp_needs_cuda.py"), "EL205")
    assert row["verdict"] == "not replayable"
    assert row["reason"].startswith("needs CUDA") and "--device cuda" in row["reason"]


def test_el205_step_in_evaluation_changes_the_parameters(replayed):
    row = _row(replayed(REPLAY / "el205_step_in_eval.py"), "EL205")
    assert row["verdict"] == "confirmed", row
    assert row["written"] == "parameters changed" and row["written_value"] == 1.0


@pytest.mark.parametrize("fixture", ["el207_functional_dropout.py", "el207_attention_dropout_p.py"])
def test_el207_functional_dropout_two_eval_passes_differ_until_fixed(replayed, fixture):
    row = _row(replayed(REPLAY / fixture), "EL207")
    assert row["verdict"] == "confirmed", row
    assert row["written_value"] > 0 and row["fixed_value"] == 0.0
    assert f"{row['written_value']:.3g}" in row["written"]


def test_el207_on_the_buggy_tabular_fixture(replayed):
    row = _row(replayed(BUGGY / "tabular_scaler_before_split.py", "--select", "EL207"), "EL207")
    assert row["verdict"] == "confirmed", row
    assert row["written_value"] > 0 and row["fixed_value"] == 0.0


def test_el201_el202_in_a_method_with_a_stand_in_for_self(replayed):
    row = _row(replayed(REPLAY / "el202_method_self.py"), "EL202")
    assert row["verdict"] == "confirmed", row
    assert (row["written_value"], row["fixed_value"]) == (1.0, 0.0)


def test_el201_in_a_method_whose_init_builds_a_torchmetrics_metric(replayed):
    pytest.importorskip("torchmetrics")
    row = _row(replayed(REPLAY / "el201_method_with_metric.py"), "EL201")
    assert row["verdict"] == "confirmed", row
    assert row["written_value"] > 0 and not row["fixed_value"]
    assert "train mode" in row["written"] and "eval mode" in row["fixed"]


def test_el201_mode_passes_differ_as_written(replayed):
    row = _row(replayed(REPLAY / "el201_no_eval.py"), "EL201")
    assert row["verdict"] == "confirmed", row
    assert row["written_value"] > 0 and not row["fixed_value"]


# --- stale variable -------------------------------------------------------------------

def test_el303_stale_outputs_score_the_training_batch(replayed):
    row = _row(replayed(REPLAY / "el303_stale_outputs.py"), "EL303")
    assert row["verdict"] == "confirmed", row
    assert row["fixed"] == "no fix"
    # The count read from the training batch's outputs is far from the planted one.
    assert row["truth_value"] > 0 and not _close(row["written_value"], row["truth_value"])
    assert abs(row["written_value"] - row["truth_value"]) > 0.25 * row["truth_value"]


def test_el303_on_the_buggy_stl10_fixture(replayed):
    row = _row(replayed(BUGGY / "stl10_eval_pipeline_slips.py", "--select", "EL303"), "EL303")
    assert row["verdict"] == "confirmed", row


# --- torchmetrics and Lightning --------------------------------------------------------

def test_el401_lightning_epoch_mean_of_batch_values_vs_compute(replayed):
    pytest.importorskip("torchmetrics")
    row = _row(replayed(REPLAY / "el401_lightning_batch_accuracy.py"), "EL401")
    assert row["verdict"] == "confirmed", row
    written, fixed, truth = row["written_value"], row["fixed_value"], row["truth_value"]
    assert _close(fixed, truth) and not _close(written, truth)
    # Class-sorted batches: a macro average of one-class batches is far below the epoch's.
    assert written < truth - 0.1
    assert f"{100 * written:.1f}%" in row["written"] and f"{100 * truth:.1f}%" in row["truth"]


@pytest.mark.parametrize("fixture", ["el401_binary_f1_variable.py", "el401_collection_helper.py"])
def test_el401_other_shapes_f1_through_a_variable_and_a_collection_in_a_helper(replayed, fixture):
    pytest.importorskip("torchmetrics")
    row = _row(replayed(REPLAY / fixture), "EL401")
    assert row["verdict"] == "confirmed", row
    assert _close(row["fixed_value"], row["truth_value"]) and not _close(row["written_value"], row["truth_value"])


def test_el401_as_written_matches_a_real_lightning_validate(replayed):
    """The child's reduction of `self.log` is Lightning's: run the fixture's module
    under a real Trainer on the same stand-in batches and compare the logged value."""
    pytest.importorskip("torchmetrics")
    pytest.importorskip("lightning")
    row = _row(replayed(REPLAY / "el401_lightning_batch_accuracy.py"), "EL401")
    code = f"""
import importlib.util, sys, torch
from torch.utils.data import DataLoader, TensorDataset
import lightning as L
from evallint.replay import metrics_child as mc
spec = importlib.util.spec_from_file_location("fx", {str(REPLAY / "el401_lightning_batch_accuracy.py")!r})
fx = importlib.util.module_from_spec(spec); spec.loader.exec_module(fx)
class Planted(fx.PetClassifier):
    def forward(self, x):
        return mc.planted_outputs(torch, x, 2, False)
data = mc.make_data(torch, 2, 0)
loader = DataLoader(TensorDataset(data["x"], data["y"]), batch_size=mc.BATCH_SIZE, shuffle=False)
trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
print("VALUE", trainer.validate(Planted(), dataloaders=loader, verbose=False)[0]["val_acc"])
"""
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    value = float(next(line for line in r.stdout.splitlines() if line.startswith("VALUE")).split()[1])
    assert _close(value, row["written_value"]), (value, row["written_value"])


def test_el401_el403_on_the_cats_dogs_fixture(replayed):
    pytest.importorskip("torchmetrics")
    rep = replayed(BUGGY / "lightning_cats_dogs_batch_accuracy.py")
    rows = [f for f in rep["findings"] if f["code"] == "EL401"]
    assert len(rows) == 2 and all(r["verdict"] == "confirmed" for r in rows), rows
    macro = _row(rep, "EL403")
    assert macro["verdict"] == "confirmed", macro
    # The per-class average is below the fraction of correct predictions, and the fix
    # (which writes the default out) keeps it.
    assert macro["written_value"] < macro["truth_value"] and _close(macro["fixed_value"], macro["written_value"])


def test_el403_macro_default_vs_fraction_correct(replayed):
    pytest.importorskip("torchmetrics")
    row = _row(replayed(REPLAY / "el403_macro_accuracy.py"), "EL403")
    assert row["verdict"] == "confirmed", row
    assert not _close(row["written_value"], row["truth_value"])
    assert _close(row["written_value"], row["fixed_value"])
    assert "average=\"micro\"" in row["reason"]


def test_without_torchmetrics_the_verdict_says_install_it(tmp_path):
    # `sys.modules[name] = None` is how Python marks a module as not importable.
    code = ("import sys; sys.modules['torchmetrics'] = None; from evallint.cli import main; "
            f"sys.argv = ['evallint', 'replay', '--device', 'cpu', '--format', 'json', "
            f"{str(REPLAY / 'el403_macro_accuracy.py')!r}]; main()")
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    row = _row(json.loads(r.stdout), "EL403")
    assert row["verdict"] == "not replayable" and "install" in row["reason"] and "torchmetrics" in row["reason"]


# --- consistent with check --------------------------------------------------------------

def test_unknown_select_is_exit_2_with_checks_message(tmp_path):
    target = REPLAY / "el101_last_batch.py"
    replay = run_cli("replay", "--select", "EL999", str(target), cwd=ROOT)
    check = run_cli("check", "--select", "EL999", str(target), cwd=ROOT)
    assert replay.returncode == check.returncode == 2
    assert replay.stderr.strip() == check.stderr.strip() and "EL999" in replay.stderr


def test_select_by_rule_name_like_check(replayed):
    rep = replayed(REPLAY / "el303_stale_outputs.py", "--select", "stale-variable-in-eval")
    assert [f["code"] for f in rep["findings"]] == ["EL303"]


@pytest.mark.parametrize("name,content,code", [
    ("broken.py", "import torch\nfor x in loader:\n    acc = (\n", "EL000"),
    ("latin.py", b"import torch\nx = '\xff'\n", "EL001"),
])
def test_unreadable_files_are_reported_as_check_reports_them(tmp_path, name, content, code):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    check = run_cli("check", "--format", "concise", name, cwd=tmp_path)
    replay = run_cli("replay", name, cwd=tmp_path)
    assert check.returncode == 1 and code in check.stdout
    assert replay.returncode == 2
    line = next(ln for ln in check.stdout.splitlines() if code in ln)
    # The same location, code and message as check's line.
    assert line.split(" [")[0].replace(" [*]", "") in replay.stderr.replace(" [*]", "")


def test_notebook_findings_keep_their_cell(replayed):
    rep = replayed(BUGGY / "notebook_validation_no_eval.ipynb")
    check = run_cli("check", "--format", "json", str(BUGGY / "notebook_validation_no_eval.ipynb"), cwd=ROOT)
    cells = {(d["code"], d["line"]): d["cell"] for d in json.loads(check.stdout)}
    assert rep["findings"]
    for f in rep["findings"]:
        assert f["cell"] is not None and cells[(f["code"], f["line"])] == f["cell"]
    text = run_cli("replay", "--device", "cpu", "--select", "EL202",
                   str(BUGGY / "notebook_validation_no_eval.ipynb"), cwd=ROOT, timeout=400)
    assert f"(cell {rep['findings'][0]['cell']})" in text.stdout


def test_keras_regions_get_a_clear_verdict(replayed):
    rep = replayed(BUGGY / "keras_mnist_binary_loss.py")
    assert rep["findings"]
    for f in rep["findings"]:
        assert f["verdict"] == "not replayable"
        assert f["reason"].startswith("replay runs PyTorch regions")
