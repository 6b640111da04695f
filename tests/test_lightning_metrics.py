"""Lightning and torchmetrics facts (evallint/facts/lightning.py, metrics.py) and the
EL401–EL405 premises checked against the real torchmetrics where it is installed."""
from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap

import libcst as cst
import pytest

from evallint.facts import ModuleFacts
from evallint.facts.lightning import multi_device
from evallint.facts.metrics import (MACRO_DEFAULT_CLASSES, MACRO_DEFAULT_FUNCTIONS, TASK_WRAPPERS, average_of,
                                    epoch_mean_exact)


def _facts(code: str) -> ModuleFacts:
    return ModuleFacts(cst.parse_module(textwrap.dedent(code)))


def _trainer(code: str):
    call = cst.parse_expression(code)
    return multi_device(call, lambda e: None)


@pytest.mark.parametrize("code,expected", [
    ('Trainer(devices=4, strategy="ddp")', True),
    ("Trainer(devices=[0, 1])", True),
    ('Trainer(devices="0,1")', True),
    ("Trainer(gpus=2)", True),
    ("Trainer(devices=1, num_nodes=2)", True),
    ('Trainer(accelerator="gpu", strategy="ddp_find_unused_parameters_true")', True),
    ("Trainer(strategy=DDPStrategy(find_unused_parameters=False), devices=2)", True),
    ('Trainer(accelerator="gpu", devices=1)', False),
    ('Trainer(devices=1, strategy="ddp")', False),
    ("Trainer(devices=args.devices)", None),
    ("Trainer(devices=-1)", None),
    ('Trainer(gpus=2, strategy="dp")', None),
    ("Trainer(max_epochs=3)", None),
    ("Trainer(**cfg.trainer)", None),
])
def test_trainer_multi_device(code, expected):
    assert _trainer(code) is expected


def test_metric_objects_uses_and_stages():
    facts = _facts('''
        import lightning as L
        import torchmetrics
        from torchmetrics.classification import MulticlassAccuracy

        class Base(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.train_acc = MulticlassAccuracy(num_classes=3).to("cpu")
                self.val_acc = self.train_acc.clone()
                self.mse, self.mae = torchmetrics.MeanSquaredError(), torchmetrics.MeanAbsoluteError()

        class Child(Base):
            def _shared(self, batch):
                self.val_acc.update(*batch)

            def validation_step(self, batch, batch_idx):
                self._shared(batch)
                self.log("val_acc", self.val_acc)

            def on_validation_epoch_end(self):
                print(self.val_acc.compute())
                self.val_acc.reset()

        trainer = L.Trainer(devices=2)
        trainer.fit(Child())
    ''')
    table = facts.metrics
    by_key = {m.key: m for m in table.objects}
    assert set(by_key) == {"self.train_acc", "self.val_acc", "self.mse", "self.mae"}
    assert by_key["self.val_acc"].source is by_key["self.train_acc"]
    kinds = sorted(u.kind for u in table.uses_of(by_key["self.val_acc"]))
    assert kinds == ["compute", "passed", "reset", "update"]
    assert [u.kind for u in table.uses_of(by_key["self.train_acc"])] == ["other"]  # the clone() call
    shared = facts.functions["_shared"][0]
    assert facts.lightning.stages(shared) == {"val"}
    child = facts.classes["Child"]
    assert facts.lightning.distributed_stages(child) == {"train", "val"}
    assert average_of(by_key["self.val_acc"]) == "macro"
    assert epoch_mean_exact(by_key["self.val_acc"], facts) is False
    assert epoch_mean_exact(by_key["self.mse"], facts) is True


def test_functional_calls_are_values_not_objects():
    facts = _facts('''
        import torchmetrics.functional as tmf
        acc = tmf.accuracy(preds, target, task="multiclass", num_classes=3)
    ''')
    assert facts.metrics.objects == []


torchmetrics = pytest.importorskip("torchmetrics")


def test_macro_default_table_matches_installed_torchmetrics():
    import torchmetrics.classification as tc
    import torchmetrics.functional.classification as fc
    for name in MACRO_DEFAULT_CLASSES:
        cls = getattr(tc, name, None)
        if cls is not None:
            assert inspect.signature(cls.__init__).parameters["average"].default == "macro", name
    for name in MACRO_DEFAULT_FUNCTIONS:
        fn = getattr(fc, name, None)
        if fn is not None:
            assert inspect.signature(fn).parameters["average"].default == "macro", name
    for name in ("Accuracy", "Precision", "Recall", "F1Score"):
        assert name in TASK_WRAPPERS
        cls = getattr(torchmetrics, name)
        assert inspect.signature(cls.__new__).parameters["average"].default == "micro", name


def test_batch_mean_of_macro_accuracy_is_not_the_epoch_value_and_el401_says_so(tmp_path):
    """The bug report in numbers: unshuffled batches of one class each, a model right
    82% of the time; the mean of per-batch macro accuracies is far from the truth,
    while the micro accuracy's batch-size-weighted mean is exact (EL401 stays quiet)."""
    import torch
    from torchmetrics.classification import MulticlassAccuracy
    gen = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.zeros(320, dtype=torch.long), torch.ones(320, dtype=torch.long)])
    right = torch.rand(len(labels), generator=gen) < 0.82
    preds = torch.where(right, labels, 1 - labels)
    macro, micro = MulticlassAccuracy(num_classes=2), MulticlassAccuracy(num_classes=2, average="micro")
    batch_macro, batch_micro, sizes = [], [], []
    for p, y in zip(preds.split(64), labels.split(64)):
        batch_macro.append(macro(p, y))
        batch_micro.append(micro(p, y))
        sizes.append(len(y))
    weights = torch.tensor(sizes, dtype=torch.float) / sum(sizes)
    logged_macro = float((torch.stack(batch_macro) * weights).sum())
    logged_micro = float((torch.stack(batch_micro) * weights).sum())
    truth = float((preds == labels).float().mean())
    assert abs(logged_macro - truth / 2) < 0.01          # about 41% logged against about 82%
    assert abs(float(macro.compute()) - truth) < 0.02     # the metric object knows better
    assert abs(logged_micro - truth) < 1e-6

    script = tmp_path / "lit.py"
    script.write_text(textwrap.dedent('''
        import lightning as L
        from torchmetrics.classification import MulticlassAccuracy

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.macro = MulticlassAccuracy(num_classes=2, average="macro")
                self.micro = MulticlassAccuracy(num_classes=2, average="micro")

            def test_step(self, batch, batch_idx):
                x, y = batch
                p = self(x)
                self.log("test_macro", self.macro(p, y))
                self.log("test_micro", self.micro(p, y))
    '''))
    proc = subprocess.run([sys.executable, "-m", "evallint", "check", "--no-cache", "--format", "json",
                           "--select", "EL4", script.name], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    found = json.loads(proc.stdout)
    assert [(f["code"], f["line"]) for f in found] == [("EL401", 14)], found


_LIGHTNING_RUN = '''
import json, sys
import torch
import lightning as L
from torch.utils.data import DataLoader, TensorDataset

namespace = {}
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), namespace)
gen = torch.Generator().manual_seed(0)
labels = torch.cat([torch.zeros(320, dtype=torch.long), torch.ones(320, dtype=torch.long)])
right = torch.rand(len(labels), generator=gen) < 0.82
scores = torch.nn.functional.one_hot(torch.where(right, labels, 1 - labels), 2).float()
loader = DataLoader(TensorDataset(scores, labels), batch_size=64)  # unshuffled: one class per batch
trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
out = trainer.test(namespace["CatsDogs"](), loader, verbose=False)[0]
print(json.dumps({"logged": float(out["test_acc_epoch"]), "truth": float(right.float().mean())}))
'''

_CATS_DOGS = '''
import lightning as L
import torch
from torchmetrics.classification import MulticlassAccuracy


class CatsDogs(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.accuracy = MulticlassAccuracy(num_classes=2, average="macro")

    def forward(self, x):
        return x  # the batch holds the model's scores already

    def test_step(self, batch, batch_idx):
        x, y = batch
        probs = torch.softmax(self(x), dim=1)
        self.log("test_acc", self.accuracy(probs, y), on_step=True, on_epoch=True)
'''


def test_el401_fix_turns_the_logged_40_percent_into_the_true_82_in_a_real_lightning_run(tmp_path):
    """Lightning itself, unshuffled test batches of one class each: as written the epoch
    value is the mean of per-batch macro accuracies (about half the truth); after
    `evallint fix` the metric object is logged and the epoch value is the true accuracy."""
    pytest.importorskip("lightning")
    (tmp_path / "run.py").write_text(_LIGHTNING_RUN)
    (tmp_path / "buggy.py").write_text(_CATS_DOGS)
    (tmp_path / "fixed.py").write_text(_CATS_DOGS)
    fix = subprocess.run([sys.executable, "-m", "evallint", "fix", "--no-cache", "--select", "EL401", "fixed.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert fix.returncode == 0, fix.stdout + fix.stderr
    assert 'self.log("test_acc", self.accuracy, on_step=True, on_epoch=True)' in (tmp_path / "fixed.py").read_text()

    def run(name):
        proc = subprocess.run([sys.executable, "run.py", name], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    written, fixed = run("buggy.py"), run("fixed.py")
    assert abs(written["truth"] - 0.82) < 0.03
    assert abs(written["logged"] - written["truth"] / 2) < 0.02   # about 41% against about 82%
    assert abs(fixed["logged"] - fixed["truth"]) < 1e-4
