"""EL401 logged-metric-value."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ModuleFacts
from evallint.facts.exprs import dotted, keyword, last_part, method_call, value_assigned
from evallint.facts.flow import last_assignment_before
from evallint.facts.lightning import EPOCH_END_HOOKS
from evallint.facts.metrics import MetricObject, MetricUse, average_of, epoch_mean_exact_any, is_metric_class_name
from evallint.fixcalls import split_line
from evallint.rule import Change, Finding, Invalid, Rule


def _transient_forward(facts, value, at) -> Optional[MetricUse]:
    """`BinaryF1Score()(preds, y)`: a metric built and called on one batch."""
    if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Call):
        return None
    built = value.func
    qualified = facts.qualify(built.func) or ""
    if not is_metric_class_name(qualified):
        return None
    metric = MetricObject(key="", call=built, stmt=at, cls=last_part(qualified), owner=None)
    return MetricUse(metric, "forward", value, at)


class LoggedMetricValue(Rule):
    """
    ## What it does
    Flags `self.log(name, self.metric(preds, y))` (or the same value through a
    variable, or inside `self.log_dict`) in a LightningModule step where the logged
    value is aggregated over the epoch (`on_epoch=True`, the default in validation
    and test steps), when the metric does not decompose over batches: per-class
    (macro) averages, F1, precision, recall, AUROC and the like.

    ## Why it is wrong
    Calling a metric object returns its value on the current batch. Lightning logs
    the batch-size-weighted mean of those batch values as the epoch value, which is
    the metric over the epoch only for means over samples (micro accuracy, mean
    errors). For a macro average the gap is largest on unshuffled data: a batch of
    cats only scores the dog class as 0, so a model right 82% of the time is logged
    at 40%.

    ## Example
    ```python
    def test_step(self, batch, batch_idx):
        x, y = batch
        preds = self(x).argmax(dim=1)
        self.log("test_acc", self.accuracy(preds, y), on_step=True, on_epoch=True)
    ```

    ## Fix
    Update the metric, then log the metric object itself; Lightning computes it over
    the epoch (and resets it) and logs the batch value for `on_step`:
    `self.accuracy(preds, y)` then `self.log("test_acc", self.accuracy, on_step=True,
    on_epoch=True)`. Safe: the step value is unchanged, the epoch value becomes the
    true one. Values wrapped in arithmetic or `log_dict` dictionaries are explained only.

    ## References
    - Lightning-AI/pytorch-lightning#19838 (40% logged, 80–85% by hand)
    - Lightning-AI/pytorch-lightning#4493, Lightning-AI/torchmetrics#597
    """

    code = "EL401"
    name = "logged-metric-value"
    summary = "A metric's batch value is logged and averaged over the epoch instead of the metric object."
    severity = Severity.WARNING
    fixable = Applicability.SAFE
    tokens = (("log",), ("torchmetrics",), ("lightning", "Lightning"))
    replay_probe = "logged"

    def check(self, facts: ModuleFacts):
        if "torchmetrics" not in facts.frameworks:
            return
        lightning = facts.lightning
        for log in lightning.log_calls:
            if log.method.name in EPOCH_END_HOOKS or log.value is None:
                continue
            stages = lightning.stages(log.method)
            if not any(lightning.on_epoch(log, stage) is True for stage in stages):
                continue
            if log.kind == "log_dict" and isinstance(log.value, cst.Dict):
                candidates = [el.value for el in log.value.elements if isinstance(el, cst.DictElement)]
            else:
                candidates = [log.value]
            for value in candidates:
                found = self._batch_value(facts, value, log.stmt)
                if found is None:
                    continue
                use, how = found
                if epoch_mean_exact_any(use.metric, facts) is not False:
                    continue
                key = dotted(use.call.func) if use.kind == "forward" and dotted(use.call.func) else use.metric.key
                if use.kind == "forward" and isinstance(use.call.func, cst.Attribute) and use.call.func.attr.value == "forward":
                    key = dotted(use.call.func.value) or use.metric.key
                if how == "transient":
                    key = f"{use.metric.cls}()"
                yield Finding(value, self._message(use.metric, key, facts),
                              self._fix(log, value, use, how, key))

    @staticmethod
    def _batch_value(facts, value, at):
        """(forward use, how) when `value` is a metric's batch value: "call" (the call
        itself), "name" (a variable bound to it), "wrapped" (`.item()`, `float()`, ...)."""
        table = facts.metrics
        use = table.by_call.get(id(value)) if isinstance(value, cst.Call) else None
        if use is not None and use.kind == "forward":
            return use, "call"
        transient = _transient_forward(facts, value, at)
        if transient is not None:
            return transient, "transient"
        if isinstance(value, cst.Name):
            s = last_assignment_before(facts.index, value.value, at)
            bound = value_assigned(s.node, value.value) if s is not None else None
            if isinstance(bound, cst.Call) and s.function is at.function:
                use = table.by_call.get(id(bound))
                if use is not None and use.kind == "forward":
                    return use, "name"
                transient = _transient_forward(facts, bound, s)
                if transient is not None:
                    return transient, "transient"
            return None
        inner = None
        if isinstance(value, cst.Call):
            mc = method_call(value)
            if mc is not None and mc[1] in ("item", "detach", "cpu", "float") and not value.args:
                inner = mc[0]
            elif isinstance(value.func, cst.Name) and value.func.value == "float" and len(value.args) == 1:
                inner = value.args[0].value
        if isinstance(inner, cst.Call):
            use = table.by_call.get(id(inner))
            if use is not None and use.kind == "forward":
                return use, "wrapped"
        return None

    @staticmethod
    def _message(metric, key: str, facts) -> str:
        if not metric.key:
            return (f"`{key}` is built and called on each batch, so its batch value is logged, and Lightning's "
                    f"epoch value is the mean of batch values, which is not the metric over the epoch; build "
                    f"the metric once in `__init__`, update it and log the object")
        origin = metric.origin
        avg = average_of(origin) if not origin.is_collection else None
        what = f"{origin.cls}, {avg} average" if avg in ("macro", "weighted", "none") else origin.cls
        return (f"the batch value of `{key}` ({what}) is logged, and Lightning's epoch value is the mean of "
                f"batch values, which is not the metric over the epoch; update the metric and log the "
                f"object: `self.log(..., {key})`")

    def _fix(self, log, value, use, how, key):
        if log.kind == "log" and keyword(log.call, "reduce_fx") is not None:
            return None  # a metric object is reduced by compute(), not reduce_fx
        if how == "transient":
            return None
        replacement = cst.parse_expression(key)
        if how == "name":
            return self.fix(Applicability.SAFE, f"Log the metric object `{key}`", Change(value, replacement))
        if how != "call" or not isinstance(log.stmt.node, cst.Expr) or log.stmt.node.value is not log.call:
            return None
        if log.kind == "log_dict" and isinstance(log.value, cst.Dict):
            return None
        new_call = log.call.with_changes(args=[a.with_changes(value=replacement) if a.value is value else a
                                               for a in log.call.args])
        change = split_line(log.stmt, cst.Expr(value), log.stmt.node.with_changes(value=new_call))
        if change is None:
            return None
        return self.fix(Applicability.SAFE, f"Update `{key}`, then log the metric object", change)

    VALID = [
        # the metric object is logged (torchmetrics' recommended style)
        """
        import lightning as L
        from torchmetrics.classification import MulticlassAccuracy

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.val_acc = MulticlassAccuracy(num_classes=3, average="macro")

            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.val_acc(self(x), y)
                self.log("val_acc", self.val_acc)
        """,
        # update() then log the object, and log_dict of a MetricCollection
        """
        import pytorch_lightning as pl
        import torchmetrics

        class Lit(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.metrics = torchmetrics.MetricCollection([torchmetrics.F1Score(task="binary")], prefix="val_")
                self.auroc = torchmetrics.AUROC(task="binary")

            def validation_step(self, batch, batch_idx):
                x, y = batch
                p = self(x).sigmoid()
                self.metrics.update(p, y)
                self.auroc.update(p, y)
                self.log_dict(self.metrics)
                self.log("val_auroc", self.auroc)
        """,
        # a batch value logged per step only (the training default), not averaged
        """
        import lightning.pytorch as pl
        from torchmetrics import F1Score

        class Lit(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.train_f1 = F1Score(task="multiclass", num_classes=5, average="macro")

            def training_step(self, batch, batch_idx):
                x, y = batch
                logits = self(x)
                self.log("train_f1_step", self.train_f1(logits, y))
                return logits.sum()
        """,
        # micro accuracy: the batch-size-weighted mean of batch values is exact
        """
        import lightning as L
        import torchmetrics

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)

            def test_step(self, batch, batch_idx):
                x, y = batch
                self.log("test_acc", self.acc(self(x), y))
        """,
        # a value computed at epoch end is the epoch value
        """
        import lightning as L
        from torchmetrics.classification import BinaryAUROC

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.auroc = BinaryAUROC()

            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.auroc.update(self(x), y)

            def on_validation_epoch_end(self):
                self.log("val_auroc", self.auroc.compute())
                self.auroc.reset()
        """,
        # functional metrics are values by design: not a metric object
        """
        import lightning as L
        import torchmetrics
        from torchmetrics.functional import f1_score

        class Lit(L.LightningModule):
            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.log("val_f1", f1_score(self(x), y, task="binary"))
        """,
    ]
    INVALID = [
        # the bug report: a macro-averaged accuracy logged per batch with on_epoch=True
        Invalid(
            """
            import lightning as L
            import torch
            from torchmetrics.classification import MulticlassAccuracy

            class CatsDogs(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.accuracy = MulticlassAccuracy(num_classes=2, average="macro")

                def test_step(self, batch, batch_idx):
                    x, y = batch
                    probs = torch.softmax(self(x), dim=1)
                    # per-batch accuracy
                    self.log("test_acc", self.accuracy(probs, y), on_step=True, on_epoch=True)  # every step and epoch
            """,
            line=14, column=30, message_contains="self.accuracy",
            fixed="""
            import lightning as L
            import torch
            from torchmetrics.classification import MulticlassAccuracy

            class CatsDogs(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.accuracy = MulticlassAccuracy(num_classes=2, average="macro")

                def test_step(self, batch, batch_idx):
                    x, y = batch
                    probs = torch.softmax(self(x), dim=1)
                    # per-batch accuracy
                    self.accuracy(probs, y)
                    self.log("test_acc", self.accuracy, on_step=True, on_epoch=True)  # every step and epoch
            """,
        ),
        # through a variable, in validation (on_epoch by default), an F1 score
        Invalid(
            """
            import pytorch_lightning as pl
            import torchmetrics

            class Lit(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.val_f1 = torchmetrics.F1Score(task="binary")

                def validation_step(self, batch, batch_idx):
                    x, y = batch
                    f1 = self.val_f1(self(x), y)
                    self.log("val_f1", f1, prog_bar=True)
            """,
            line=12, column=28,
            fixed="""
            import pytorch_lightning as pl
            import torchmetrics

            class Lit(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.val_f1 = torchmetrics.F1Score(task="binary")

                def validation_step(self, batch, batch_idx):
                    x, y = batch
                    f1 = self.val_f1(self(x), y)
                    self.log("val_f1", self.val_f1, prog_bar=True)
            """,
        ),
        # a shared helper called from validation and test; a MetricCollection's batch values
        Invalid(
            """
            import lightning as L
            from torchmetrics import MetricCollection
            from torchmetrics.classification import MulticlassAccuracy, MulticlassRecall

            class Lit(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.metrics = MetricCollection({"acc": MulticlassAccuracy(num_classes=4, average="micro"),
                                                     "recall": MulticlassRecall(num_classes=4, average="macro")})

                def _evaluate(self, batch):
                    x, y = batch
                    self.log_dict(self.metrics(self(x), y))

                def validation_step(self, batch, batch_idx):
                    self._evaluate(batch)
            """,
            line=13, column=23,
            fixed="""
            import lightning as L
            from torchmetrics import MetricCollection
            from torchmetrics.classification import MulticlassAccuracy, MulticlassRecall

            class Lit(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.metrics = MetricCollection({"acc": MulticlassAccuracy(num_classes=4, average="micro"),
                                                     "recall": MulticlassRecall(num_classes=4, average="macro")})

                def _evaluate(self, batch):
                    x, y = batch
                    self.metrics(self(x), y)
                    self.log_dict(self.metrics)

                def validation_step(self, batch, batch_idx):
                    self._evaluate(batch)
            """,
        ),
        # a metric built and called per batch: explained (there is no object to log)
        Invalid(
            """
            import lightning as L
            from torchmetrics.classification import BinaryF1Score

            class Lit(L.LightningModule):
                def validation_step(self, batch, batch_idx):
                    x, y = batch
                    f1 = BinaryF1Score()(self(x), y)
                    self.log("val_f1", f1, on_step=False, on_epoch=True)
            """,
            line=8, column=28, message_contains="built and called on each batch",
        ),
        # inside a log_dict dictionary: explained, not rewritten
        Invalid(
            """
            import lightning as L
            import torchmetrics

            class Lit(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.auroc = torchmetrics.AUROC(task="binary")

                def training_step(self, batch, batch_idx):
                    x, y = batch
                    p = self(x)
                    self.log_dict({"train_auroc": self.auroc(p, y)}, on_epoch=True)
                    return p.sum()
            """,
            line=12, column=39,
        ),
    ]
