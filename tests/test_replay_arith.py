"""`evallint replay` confirms the metric-arithmetic findings (EL103-EL110, EL113).

Each file is replayed once by the real CLI in a subprocess (real torch tensors on the
CPU); the tests read its JSON. The planted truth comes from that JSON, and every
expectation is a relation the bug implies (a count divided by batches is inflated,
a floor ratio is 0, the fix lands on the truth), not a number written down here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPLAY = ROOT / "fixtures" / "replay"
BUGGY = ROOT / "fixtures" / "buggy"

FILES = [
    REPLAY / "el103_len_loader.py", REPLAY / "el104_total_batch_size.py", REPLAY / "el105_floor_ratio.py",
    REPLAY / "el106_loss_tensor_total.py", REPLAY / "el107_mean_loss_by_samples.py",
    REPLAY / "el108_argmax_flat.py", REPLAY / "el109_round_logits.py", REPLAY / "el110_batch_accuracies.py",
    REPLAY / "el113_scores_equal_labels.py",
    BUGGY / "pyg_graph_accuracy_per_batch.py", BUGGY / "cifar_fixed_batch_total.py",
    BUGGY / "news_classifier_epoch_losses.py", BUGGY / "speech_commands_sum_loss.py",
    BUGGY / "churn_logits_sklearn_metrics.py",
]


def _replay(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "evallint", "replay", "--format", "json", "--device", "cpu",
                          str(path)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode in (0, 1), out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def replayed():
    pytest.importorskip("torch")
    with ThreadPoolExecutor(max_workers=3) as pool:  # each child imports torch once
        reports = list(pool.map(_replay, FILES))
    return {Path(r["path"]).name: r for r in reports}


def _row(replayed, name: str, code: str, line: int) -> dict:
    rows = [f for f in replayed[name]["findings"] if f["code"] == code and f["line"] == line]
    assert rows, f"no {code} at line {line} in {name}: {replayed[name]['findings']}"
    row = rows[0]
    assert row["verdict"] == "confirmed", row
    return row


def _differs(a: float, b: float) -> bool:
    return a != pytest.approx(b, rel=1e-3)


# --- EL103 batch-count-denominator --------------------------------------------------

def test_el103_count_over_batches_is_inflated_by_the_batch_size(replayed):
    row = _row(replayed, "el103_len_loader.py", "EL103", 21)
    assert row["metric"] == "accuracy"
    assert 0 < row["truth_value"] < 1
    assert row["written_value"] > 10 * row["truth_value"]  # correct / number of batches
    assert row["fixed_value"] == pytest.approx(row["truth_value"])


def test_el103_graph_loader_batches_are_records(replayed):
    row = _row(replayed, "pyg_graph_accuracy_per_batch.py", "EL103", 62)
    assert row["metric"] == "correct / len(loader)"
    assert row["written_value"] > 10 * row["truth_value"]
    assert row["fixed_value"] == pytest.approx(row["truth_value"])


# --- EL104 fixed-batch-size-count ---------------------------------------------------

def test_el104_constant_batch_size_overcounts_the_short_batch(replayed):
    row = _row(replayed, "el104_total_batch_size.py", "EL104", 23)
    assert row["metric"] == "100.0 * hits / seen"
    assert row["truth_value"] > 1  # a percentage
    assert row["written_value"] < row["truth_value"]  # the denominator counts a full last batch
    assert row["fixed_value"] == pytest.approx(row["truth_value"])


def test_el104_pair_each_judged_on_its_own_value(replayed):
    total = _row(replayed, "cifar_fixed_batch_total.py", "EL104", 43)
    assert total["metric"] == "total"
    assert total["written_value"] > total["truth_value"]  # samples counted
    assert total["fixed_value"] == pytest.approx(total["truth_value"])
    per_batch = _row(replayed, "cifar_fixed_batch_total.py", "EL104", 45)
    assert per_batch["metric"] == "batch_correct / batch_size (last batch)"
    assert per_batch["written_value"] < per_batch["truth_value"]  # the short batch divided by a full size
    assert per_batch["fixed_value"] == pytest.approx(per_batch["truth_value"])


# --- EL105 integer-division-metric --------------------------------------------------

def test_el105_floor_ratio_is_zero(replayed):
    row = _row(replayed, "el105_floor_ratio.py", "EL105", 21)
    assert row["written_value"] == 0.0
    assert 0 < row["truth_value"] < 1
    assert row["fixed_value"] == pytest.approx(row["truth_value"])


def test_el105_next_to_el104_moves_towards_the_truth(replayed):
    row = _row(replayed, "cifar_fixed_batch_total.py", "EL105", 47)
    assert row["written_value"] == 0.0
    # The EL104 count on the same line still weighs: the fix lands near the truth.
    assert 0 < row["fixed_value"] < row["truth_value"]
    assert row["fixed_value"] == pytest.approx(row["truth_value"], rel=0.05)


# --- EL106 tensor-accumulator ---------------------------------------------------------

@pytest.mark.parametrize("name,line", [("el106_loss_tensor_total.py", 20), ("news_classifier_epoch_losses.py", 46)])
def test_el106_total_holds_the_graph_until_fixed(replayed, name, line):
    row = _row(replayed, name, "EL106", line)
    assert row["probe"] == "graph"
    assert row["written_value"] == 1.0 and row["written"] == "holds a grad_fn"
    assert row["fixed_value"] == 0.0 and row["fixed"] == "no graph"


# --- EL107 loss-normaliser-mismatch ---------------------------------------------------

def test_el107_mean_losses_over_samples_are_a_batch_size_too_small(replayed):
    row = _row(replayed, "el107_mean_loss_by_samples.py", "EL107", 19)
    assert row["metric"] == "val_loss"
    assert row["written_value"] < row["truth_value"] / 10
    # the batch means are averaged: the short last batch weighs a little more
    assert row["fixed_value"] == pytest.approx(row["truth_value"], rel=0.05)


def test_el107_summed_losses_over_batches_measure_the_loss_not_the_accuracy(replayed):
    row = _row(replayed, "speech_commands_sum_loss.py", "EL107", 37)
    assert row["metric"] == "val_loss / len(loader)"  # the returned loss, not the accuracy next to it
    assert row["written_value"] > 10 * row["truth_value"]  # sum-reduced, divided by batches
    assert row["fixed_value"] == pytest.approx(row["truth_value"])


def test_el107_runs_past_another_bug_in_its_loop(replayed):
    row = _row(replayed, "news_classifier_epoch_losses.py", "EL107", 61)
    assert row["metric"] == "val_loss / len(val_loader.dataset)"
    assert row["written_value"] < row["truth_value"] / 10
    assert row["fixed_value"] == pytest.approx(row["truth_value"], rel=0.05)


# --- EL108 argmax-wrong-dim -----------------------------------------------------------

def test_el108_argmax_without_dim(replayed):
    row = _row(replayed, "el108_argmax_flat.py", "EL108", 17)
    assert row["metric"] == "100 * right / count"
    assert row["written_value"] < row["truth_value"] / 2
    assert row["fixed_value"] == pytest.approx(row["truth_value"])


def test_el108_dim0_breaks_the_comparison_with_labels(replayed):
    row = _row(replayed, "news_classifier_epoch_losses.py", "EL108", 58)
    assert row["written"] == "error" and row["fixed"] == "no fix"
    assert "`predicted`" in row["reason"] and "size of tensor" in row["reason"]


# --- EL109 threshold-on-logits --------------------------------------------------------

def test_el109_rounded_logits(replayed):
    row = _row(replayed, "el109_round_logits.py", "EL109", 26)
    assert row["metric"] == "correct / total"
    assert row["written_value"] < row["truth_value"]
    assert row["fixed_value"] == pytest.approx(row["truth_value"])


def test_el109_predictions_are_scored_against_the_labels(replayed):
    row = _row(replayed, "churn_logits_sklearn_metrics.py", "EL109", 43)
    assert row["metric"] == "accuracy of `preds` against the labels"
    assert row["written_value"] < row["truth_value"]
    assert row["fixed_value"] == pytest.approx(row["truth_value"])


# --- EL110 mean-of-batch-means --------------------------------------------------------

def test_el110_mean_of_batch_means_is_slightly_off(replayed):
    row = _row(replayed, "el110_batch_accuracies.py", "EL110", 16)
    assert row["fixed"] == "no fix"
    assert _differs(row["written_value"], row["truth_value"])
    assert row["written_value"] == pytest.approx(row["truth_value"], rel=0.05)  # the short batch only


# --- EL113 compare-logits-to-labels ---------------------------------------------------

def test_el113_scores_compared_with_labels(replayed):
    row = _row(replayed, "el113_scores_equal_labels.py", "EL113", 18)
    assert row["written"] == "error"  # (N, C) scores against (N,) labels do not even broadcast
    assert row["fixed_value"] == pytest.approx(row["truth_value"])
    assert row["truth_value"] > 1  # the printed percentage

