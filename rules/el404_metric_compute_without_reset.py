"""EL404 metric-compute-without-reset."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ModuleFacts
from evallint.facts.exprs import dotted
from evallint.facts.lightning import EPOCH_END_HOOKS
from evallint.facts.metrics import RUNNING_BEST
from evallint.facts.walk import walk
from evallint.fixcalls import insert_after
from evallint.rule import Finding, Invalid, Rule


def _mentions(facts, root: cst.CSTNode, key: str) -> int:
    """How often `key` (a name or `self.attr`) is mentioned under `root`."""
    count = 0
    if "." in key:
        for node in walk(root):
            if isinstance(node, cst.Attribute) and dotted(node) == key:
                count += 1
    else:
        for node in walk(root):
            if isinstance(node, cst.Name) and node.value == key:
                count += 1
    return count


def _constructions(facts, metric) -> int:
    return sum(1 for m in facts.metrics.objects if m.key == metric.key and m.owner is metric.owner)


def _statements_in(facts, stmt):
    return facts.index.statements[stmt.order + 1: stmt.end_order + 1]


class MetricComputeWithoutReset(Rule):
    """
    ## What it does
    Flags `metric.compute()` on a torchmetrics object that runs once per epoch (in an
    epoch loop, in a function called from one, or in a LightningModule hook) while
    the metric is updated every epoch and never `reset()`: not in the loop, not in
    the module, and not by Lightning (which resets only metric objects passed to
    `self.log`/`self.log_dict`).

    ## Why it is wrong
    A metric object accumulates its state until `reset()`. Without it, the value of
    epoch 5 is computed over epochs 1–5: a validation score that moves more and more
    slowly, hides over-fitting and drives checkpointing with stale numbers.

    ## Example
    ```python
    val_f1 = F1Score(task="multiclass", num_classes=5)
    for epoch in range(20):
        train_one_epoch(model, train_loader)
        for x, y in val_loader:
            val_f1.update(model(x), y)
        print(epoch, val_f1.compute())
    ```

    ## Fix
    Reset after the last use in the epoch: `val_f1.reset()` after the `print` (in
    Lightning, at the end of `on_validation_epoch_end`; or log the metric object
    and let Lightning reset it). Safe: the next epoch starts from an empty state.
    When the last use is a `return`, the finding is explained only.

    ## References
    - haven-jeon/KoGPT2-subtasks#1 (`compute()` without `reset()` in Lightning; quotes the
      torchmetrics Lightning page: Lightning resets only metric objects passed to `self.log`)
    - ashleve/lightning-hydra-template#239 (why each stage needs its own metric and reset)
    """

    code = "EL404"
    name = "metric-compute-without-reset"
    summary = "`metric.compute()` each epoch without `reset()`: the metric accumulates across epochs."
    severity = Severity.WARNING
    fixable = Applicability.SAFE
    tokens = (("compute",), ("torchmetrics",))

    def check(self, facts: ModuleFacts):
        if "torchmetrics" not in facts.frameworks or not facts.metrics.objects:
            return
        table = facts.metrics
        reported = set()
        for metric in table.objects:
            if metric.origin.cls in RUNNING_BEST:
                continue  # a best-so-far tracker accumulates across epochs by design
            uses = table.uses_of(metric)
            computes = [u for u in uses if u.kind == "compute"]
            if not computes or any(u.kind in ("reset", "passed") for u in uses):
                continue
            if not any(u.kind in ("forward", "update") for u in uses):
                continue
            if metric.key.startswith("self."):
                finding = self._lightning(facts, metric, uses, computes)
            else:
                finding = self._loop(facts, metric, uses, computes)
            if finding is not None and id(finding.node) not in reported:
                reported.add(id(finding.node))
                yield finding

    # LightningModule attributes -----------------------------------------------------
    def _lightning(self, facts, metric, uses, computes) -> Optional[Finding]:
        lightning = facts.lightning
        cls_stmt = metric.owner
        if cls_stmt is None:
            return None
        cls = facts.classes.get(cls_stmt.node.name.value)
        if cls is None or cls.stmt is not cls_stmt or lightning.class_of_name(cls.name) is None:
            return None
        # Built again in a hook that runs every epoch: a fresh state each time.
        for other in facts.metrics.objects:
            if other.key == metric.key and other.owner is cls_stmt:
                built_in = facts.function_of(other.stmt)
                if built_in is None or lightning.runs_repeatedly(built_in):
                    return None
        if _mentions(facts, cls_stmt.node, metric.key) > len(uses) + _constructions(facts, metric):
            return None  # also used in ways not tracked (a list of metrics, getattr...): cannot tell
        for use in sorted(computes, key=lambda u: u.stmt.order):
            method = facts.function_of(use.stmt)
            if method is None or not lightning.runs_repeatedly(method):
                continue
            fix = None
            if method.name in EPOCH_END_HOOKS:
                fix = self._reset_fix(facts, metric.key, [u for u in uses if facts.function_of(u.stmt) is method],
                                      method.stmt)
            return Finding(use.call, self._message(metric.key, "hook", method.name), fix)
        return None

    # Plain loops -----------------------------------------------------------------------
    def _loop(self, facts, metric, uses, computes) -> Optional[Finding]:
        for use in sorted(computes, key=lambda u: u.stmt.order):
            epoch = self._epoch_loop(facts, metric, use)
            if epoch is not None:
                inside = [u for u in uses if epoch.stmt.contains(u.stmt)]
                if not any(u.kind in ("forward", "update") for u in inside) and \
                        not self._updated_by_call(facts, metric, epoch.stmt):
                    continue
                if any(metric.key in s.stores for s in _statements_in(facts, epoch.stmt)):
                    continue  # rebuilt inside the loop
                if _mentions(facts, epoch.node, metric.key) > len(inside):
                    continue
                fix = self._reset_fix(facts, metric.key, inside, epoch.stmt)
                return Finding(use.call, self._message(metric.key, "loop", ", ".join(epoch.targets) or "..."), fix)
            finding = self._global_in_function(facts, metric, uses, use)
            if finding is not None:
                return finding
        return None

    @staticmethod
    def _epoch_loop(facts, metric, use):
        """The outermost loop around the compute that is not a batch loop and that the
        metric is built before (outside)."""
        found = None
        for loop in facts.enclosing_loops(use.stmt):
            if loop.stmt.contains(metric.stmt) or facts.is_batch_loop(loop):
                continue
            if metric.stmt.function is loop.stmt.function and metric.stmt.order > loop.stmt.order:
                continue
            if metric.stmt.function is not None and metric.stmt.function is not loop.stmt.function:
                continue
            found = loop
        return found

    def _updated_by_call(self, facts, metric, stmt) -> bool:
        """A call inside `stmt` of an in-file function that updates the (global) metric."""
        if metric.owner is not None:
            return False
        for call, _ in facts.calls_within(stmt):
            name = dotted(call.func)
            for f in facts.functions.get(name or "", []):
                if f.is_method:
                    continue
                if any(u.kind in ("forward", "update") and f.stmt.contains(u.stmt)
                       for u in facts.metrics.uses_of(metric)):
                    return True
        return False

    def _global_in_function(self, facts, metric, uses, use) -> Optional[Finding]:
        """A module-level metric computed in a function that an epoch loop calls."""
        if metric.owner is not None:
            return None
        function = facts.function_of(use.stmt)
        if function is None or function.is_method:
            return None
        in_loop = False
        for site in facts.call_sites(function):
            if any(not facts.is_batch_loop(l) for l in facts.enclosing_loops(site.stmt)):
                in_loop = True
        if not in_loop:
            return None
        if _mentions(facts, facts.module, metric.key) > len(uses) + _constructions(facts, metric):
            return None
        mine = [u for u in uses if function.stmt.contains(u.stmt)]
        fix = self._reset_fix(facts, metric.key, mine, function.stmt)
        return Finding(use.call, self._message(metric.key, "function", function.name), fix)

    # Shared -----------------------------------------------------------------------------
    def _reset_fix(self, facts, key, uses, container):
        """Insert `key.reset()` after the statement of `container`'s body that holds the
        last use."""
        if not uses:
            return None
        last = max(uses, key=lambda u: u.stmt.order).stmt
        top = last
        while top.parent is not None and top.parent is not container:
            top = top.parent
        if top.parent is not container or isinstance(top.node, (cst.Return, cst.Raise, cst.Continue, cst.Break)):
            return None
        change = insert_after(top, f"{key}.reset()")
        if change is None:
            return None
        return self.fix(Applicability.SAFE, f"Call `{key}.reset()` after its last use", change)

    @staticmethod
    def _message(key: str, where: str, name) -> str:
        place = {"hook": f"in `{name}`", "loop": f"in the `for {name}` loop",
                 "function": f"in `{name}()`, which runs every epoch,"}[where]
        return (f"`{key}.compute()` runs {place} but `{key}` is never reset: its state holds every batch "
                f"seen so far (earlier epochs included); call `{key}.reset()` after its last use")



    VALID = [
        # compute() followed by reset() at the end of the epoch
        """
        import torch
        from torchmetrics import F1Score
        val_f1 = F1Score(task="multiclass", num_classes=5)
        for epoch in range(20):
            for x, y in val_loader:
                val_f1.update(model(x), y)
            print(epoch, val_f1.compute())
            val_f1.reset()
        """,
        # Lightning resets a metric object that is logged
        """
        import lightning as L
        import torchmetrics

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.val_acc = torchmetrics.Accuracy(task="binary")

            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.val_acc(self(x), y)
                self.log("val_acc", self.val_acc)

            def on_validation_epoch_end(self):
                print("val acc", self.val_acc.compute())
        """,
        # the torchmetrics documentation's pattern: compute, log, reset
        """
        import lightning as L
        from torchmetrics import MetricCollection
        from torchmetrics.classification import MulticlassAccuracy, MulticlassPrecision

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.valid_metrics = MetricCollection([MulticlassAccuracy(3, average="micro"),
                                                       MulticlassPrecision(3, average="macro")], prefix="val_")

            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.valid_metrics.update(self(x), y)

            def on_validation_epoch_end(self):
                self.log_dict(self.valid_metrics.compute())
                self.valid_metrics.reset()
        """,
        # a MaxMetric keeps the best value over epochs on purpose
        """
        import lightning as L
        from torchmetrics import MaxMetric
        from torchmetrics.classification import MulticlassAccuracy

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.val_acc = MulticlassAccuracy(num_classes=10, average="micro")
                self.val_acc_best = MaxMetric()

            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.val_acc(self(x), y)
                self.log("val/acc", self.val_acc)

            def on_validation_epoch_end(self):
                self.val_acc_best(self.val_acc.compute())
                self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)
        """,
        # a fresh metric every epoch
        """
        import torchmetrics
        for epoch in range(10):
            acc = torchmetrics.Accuracy(task="binary")
            for x, y in test_loader:
                acc.update(model(x), y)
            print(acc.compute())
        """,
        # one pass, a running value printed inside the batch loop
        """
        import torchmetrics
        acc = torchmetrics.Accuracy(task="binary")
        for i, (x, y) in enumerate(test_loader):
            acc.update(model(x), y)
            if i % 100 == 0:
                print("running accuracy", acc.compute())
        print(acc.compute())
        """,
        # the metric is handed to a helper that may reset it
        """
        import torchmetrics
        acc = torchmetrics.Accuracy(task="binary")
        for epoch in range(5):
            for x, y in val_loader:
                acc.update(model(x), y)
            print(acc.compute())
            report_and_reset(acc)
        """,
        # Hugging Face `evaluate` metrics reset themselves in compute(): not torchmetrics
        """
        import evaluate
        import torch
        metric = evaluate.load("accuracy")
        for epoch in range(3):
            for batch in eval_dataloader:
                metric.add_batch(predictions=model(batch).argmax(-1), references=batch["labels"])
            print(metric.compute())
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torchmetrics import F1Score
            val_f1 = F1Score(task="multiclass", num_classes=5)
            for epoch in range(20):
                train_one_epoch(model, train_loader)
                with torch.no_grad():
                    for x, y in val_loader:
                        val_f1.update(model(x), y)
                print(f"epoch {epoch}: val F1 {val_f1.compute():.3f}")
            """,
            line=9, column=36, message_contains="val_f1.reset()",
            fixed="""
            import torch
            from torchmetrics import F1Score
            val_f1 = F1Score(task="multiclass", num_classes=5)
            for epoch in range(20):
                train_one_epoch(model, train_loader)
                with torch.no_grad():
                    for x, y in val_loader:
                        val_f1.update(model(x), y)
                print(f"epoch {epoch}: val F1 {val_f1.compute():.3f}")
                val_f1.reset()
            """,
        ),
        # LightningModule: compute() logged as a plain value, never reset
        Invalid(
            """
            import lightning as L
            from torchmetrics.classification import BinaryAUROC

            class Lit(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.val_auroc = BinaryAUROC()

                def validation_step(self, batch, batch_idx):
                    x, y = batch
                    self.val_auroc.update(self(x).sigmoid(), y)

                def on_validation_epoch_end(self):
                    value = self.val_auroc.compute()
                    self.log("val_auroc", value, prog_bar=True)
            """,
            line=14, column=17,
            fixed="""
            import lightning as L
            from torchmetrics.classification import BinaryAUROC

            class Lit(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.val_auroc = BinaryAUROC()

                def validation_step(self, batch, batch_idx):
                    x, y = batch
                    self.val_auroc.update(self(x).sigmoid(), y)

                def on_validation_epoch_end(self):
                    value = self.val_auroc.compute()
                    self.val_auroc.reset()
                    self.log("val_auroc", value, prog_bar=True)
            """,
        ),
        # a module-level metric in an evaluate() called every epoch; the value is returned
        Invalid(
            """
            import torch
            import torchmetrics
            accuracy = torchmetrics.Accuracy(task="multiclass", num_classes=10)

            def evaluate(model, loader):
                for x, y in loader:
                    accuracy(model(x), y)
                return accuracy.compute()

            for epoch in range(10):
                train(model)
                print(evaluate(model, test_loader))
            """,
            line=8, column=12,
        ),
    ]
