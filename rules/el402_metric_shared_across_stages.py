"""EL402 metric-shared-across-stages."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import ModuleFacts
from evallint.rule import Finding, Invalid, Rule

# Validation runs inside the training epoch; test and predict run after fit, once
# Lightning has reset the metrics it logs, so only training + validation interleave.
_EVAL_STAGES = ("val",)
_STAGE_WORDS = {"train": "training", "val": "validation"}


class MetricSharedAcrossStages(Rule):
    """
    ## What it does
    Flags a torchmetrics object of a LightningModule that is updated (called or
    `update()`-d) both in the training stage and in validation: in the step hooks
    themselves or in a helper they share. (Test and predict run after `fit`, so a
    metric shared with them does not interleave; a `compute()` there that sees stale
    training state is EL404's finding.)

    ## Why it is wrong
    A metric object keeps state across calls. Lightning runs validation in the middle
    of a training epoch (before the training epoch ends), so the validation batches
    are added to the training state and the training batches to the validation
    value; whichever stage resets first also wipes the other's. Both logged numbers
    are a mixture, and nothing fails.

    ## Example
    ```python
    self.accuracy = torchmetrics.Accuracy(task="binary")
    ...
    def training_step(self, batch, batch_idx):
        self.accuracy(self(x), y)
    def validation_step(self, batch, batch_idx):
        self.accuracy(self(x), y)
    ```

    ## Fix
    One metric object per stage: `self.train_acc = Accuracy(...)`,
    `self.val_acc = self.train_acc.clone()` (or `MetricCollection(...).clone(prefix=
    "val_")`). No automatic fix: every use must pick its stage's object.

    ## References
    - Lightning-AI/torchmetrics#1450 (the same metric in training and validation)
    - Lightning-AI/pytorch-lightning#11601, Lightning-AI/pytorch-lightning#8350
    """

    code = "EL402"
    name = "metric-shared-across-stages"
    summary = "One metric object is updated in training and in validation: the stages mix state."
    severity = Severity.WARNING
    tokens = (("torchmetrics",), ("lightning", "Lightning"))

    def check(self, facts: ModuleFacts):
        if "torchmetrics" not in facts.frameworks or not facts.metrics.objects:
            return
        lightning = facts.lightning
        by_metric: dict[int, list] = {}
        for use in facts.metrics.uses:
            if use.kind not in ("forward", "update") or not use.metric.key.startswith("self."):
                continue
            method = facts.function_of(use.stmt)
            if method is None or lightning.class_of(method) is None:
                continue
            stages = lightning.stages(method)
            if stages:
                by_metric.setdefault(id(use.metric), []).append((use, method, stages))
        for entries in by_metric.values():
            all_stages = frozenset().union(*(s for _, _, s in entries))
            if "train" not in all_stages or not any(s in all_stages for s in _EVAL_STAGES):
                continue
            # Report at the first update that runs in an evaluation stage.
            use, method, stages = min(((u, m, s) for u, m, s in entries if any(x in s for x in _EVAL_STAGES)),
                                      key=lambda e: e[0].stmt.order)
            places = sorted({m.name for _, m, _ in entries})
            eval_stage = next(s for s in _EVAL_STAGES if s in all_stages)
            key = use.metric.key
            message = (f"`{key}` is updated in training and in {_STAGE_WORDS[eval_stage]} "
                       f"(in `{'`, `'.join(places)}`): one metric state mixes both stages; "
                       f"use one object per stage (`{key}.clone()`)")
            yield Finding(use.call, message)

    VALID = [
        # one object per stage, the second a clone (Lightning's recommended style)
        """
        import lightning as L
        import torchmetrics

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)
                self.val_acc = self.train_acc.clone()

            def training_step(self, batch, batch_idx):
                x, y = batch
                logits = self(x)
                self.train_acc(logits, y)
                self.log("train_acc", self.train_acc)
                return logits.sum()

            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.val_acc(self(x), y)
                self.log("val_acc", self.val_acc)
        """,
        # MetricCollection cloned per stage, updated through a shared helper
        """
        import lightning as L
        from torchmetrics import MetricCollection
        from torchmetrics.classification import BinaryAccuracy, BinaryF1Score

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                metrics = MetricCollection([BinaryAccuracy(), BinaryF1Score()])
                self.train_metrics = metrics.clone(prefix="train_")
                self.val_metrics = metrics.clone(prefix="val_")

            def _step(self, batch, metrics):
                x, y = batch
                metrics.update(self(x), y)

            def training_step(self, batch, batch_idx):
                self._step(batch, self.train_metrics)

            def validation_step(self, batch, batch_idx):
                self._step(batch, self.val_metrics)
        """,
        # shared by validation and test only: they never run at the same time (nor do
        # training and test)
        """
        import pytorch_lightning as pl
        import torchmetrics

        class Lit(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.eval_auroc = torchmetrics.AUROC(task="binary")

            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.eval_auroc(self(x), y)
                self.log("val_auroc", self.eval_auroc)

            def test_step(self, batch, batch_idx):
                x, y = batch
                self.eval_auroc(self(x), y)
                self.log("test_auroc", self.eval_auroc)
        """,
        # training and test share one object: test runs after fit, when the logged metric was reset
        """
        import lightning as L
        from torchmetrics.classification import BinaryAccuracy

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.acc = BinaryAccuracy()

            def training_step(self, batch, batch_idx):
                x, y = batch
                out = self(x)
                self.acc(out, y)
                self.log("train_acc", self.acc, on_epoch=True)
                return out.sum()

            def test_step(self, batch, batch_idx):
                x, y = batch
                self.acc(self(x), y)
                self.log("test_acc", self.acc)
        """,
    ]
    INVALID = [
        Invalid(
            """
            import pytorch_lightning as pl
            import torch
            import torchmetrics

            class Boring(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.layer = torch.nn.Linear(32, 2)
                    self.accuracy = torchmetrics.classification.Accuracy("binary")

                def training_step(self, batch, batch_idx):
                    out = self.layer(batch)
                    self.accuracy(out.argmax(1), torch.ones(len(out)))
                    return out.sum()

                def validation_step(self, batch, batch_idx):
                    out = self.layer(batch)
                    self.accuracy.update(out.argmax(1), torch.zeros(len(out)))
                    self.log("val_acc", self.accuracy)
            """,
            line=18, column=9, message_contains="validation",
        ),
        # a helper shared by the training and the validation step
        Invalid(
            """
            import lightning as L
            import torch.nn.functional as F
            from torchmetrics import F1Score

            class Lit(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.f1 = F1Score(task="multiclass", num_classes=3)

                def shared_step(self, batch, stage):
                    x, y = batch
                    logits = self(x)
                    self.f1(logits, y)
                    self.log(f"{stage}_f1", self.f1)
                    return F.cross_entropy(logits, y)

                def training_step(self, batch, batch_idx):
                    return self.shared_step(batch, "train")

                def validation_step(self, batch, batch_idx):
                    self.shared_step(batch, "val")
            """,
            line=13, column=9,
        ),
    ]
