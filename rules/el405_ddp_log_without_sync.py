"""EL405 ddp-log-without-sync."""
from __future__ import annotations

import re

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ModuleFacts
from evallint.facts.exprs import dotted, keyword, last_part, literal_value, method_call, NOT_LITERAL
from evallint.facts.flow import assigned_value
from evallint.facts.metrics import resolve
from evallint.fixcalls import add_keyword
from evallint.rule import Change, Finding, Invalid, Rule

_EVAL_STAGES = frozenset({"val", "test"})
# Calls whose result is already reduced or gathered across processes.
_SYNCED_WORDS = ("all_gather", "all_reduce", "reduce", "gather", "sync", "broadcast")


_SAME_ON_EVERY_RANK = re.compile(r"current_epoch|global_step|param_groups|get_last_lr|\blr\b")


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


class DdpLogWithoutSync(Rule):
    """
    ## What it does
    Flags `self.log(name, tensor)` (and `self.log_dict` of plain values) in a
    validation or test hook of a LightningModule that a multi-device Trainer in the
    same file runs (`Trainer(devices=4, strategy="ddp")`, `num_nodes=2`, ...),
    aggregated over the epoch and without `sync_dist=True`.

    ## Why it is wrong
    Under DDP every process sees its own shard of the validation set. Without
    `sync_dist=True` Lightning averages the values of one process only, so the logged
    `val_loss` (and the checkpoint or early stopping that monitors it) is a
    1/N-sample estimate that differs between processes. Metric objects and values
    from `metric.compute()` synchronise themselves and are not flagged.

    ## Example
    ```python
    def validation_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(x), y)
        self.log("val_loss", loss)
    ...
    trainer = L.Trainer(devices=4, strategy="ddp")
    trainer.fit(model, datamodule=dm)
    ```

    ## Fix
    `self.log("val_loss", loss, sync_dist=True)`. Safe: with a single process it
    changes nothing.

    ## References
    - Lightning documentation, multi-GPU training: "Synchronize validation and test logging"
    - Lightning's own warning: "It is recommended to use `self.log(..., sync_dist=True)` when
      logging on epoch level in distributed setting to accumulate the metric across devices."
    """

    code = "EL405"
    name = "ddp-log-without-sync"
    summary = "A plain tensor logged in validation/test under a multi-device Trainer without `sync_dist=True`."
    severity = Severity.INFO
    fixable = Applicability.SAFE
    tokens = (("Trainer",), ("log",), ("lightning", "Lightning"))

    def check(self, facts: ModuleFacts):
        lightning = facts.lightning
        if not lightning.log_calls or not any(t.multi_device for t in lightning.trainers):
            return
        for log in lightning.log_calls:
            stages = lightning.stages(log.method) & _EVAL_STAGES & lightning.distributed_stages(log.cls)
            if not stages:
                continue
            if any(a.star for a in log.call.args) or keyword(log.call, "sync_dist") is not None \
                    or keyword(log.call, "rank_zero_only") is not None:
                continue
            if not any(lightning.on_epoch(log, s) is True for s in stages):
                continue
            if self._gathers(facts, log.method):
                continue
            values = self._values(facts, log)
            if not values or not any(self._plain(facts, v, log.stmt) for v in values):
                continue
            message = (f"`self.{log.kind}` in `{log.method.name}` logs a plain value without `sync_dist=True` "
                       f"while the Trainer runs several processes: the epoch value is one process's mean; "
                       f"add `sync_dist=True`")
            fix = self.fix(Applicability.SAFE, "Add `sync_dist=True`",
                           Change(log.call, add_keyword(log.call, "sync_dist", "True")))
            yield Finding(log.call, message, fix)

    @staticmethod
    def _values(facts, log):
        value = log.value
        if log.kind == "log":
            return [value] if value is not None else []
        if isinstance(value, cst.Name):
            value = assigned_value(facts.index, value.value, log.stmt)
        if isinstance(value, cst.Dict):
            return [el.value for el in value.elements if isinstance(el, cst.DictElement)]
        return []

    @staticmethod
    def _gathers(facts, method) -> bool:
        """The hook reduces or gathers across processes itself."""
        for call, _ in facts.calls_within(method.stmt):
            name = last_part(facts.qualify(call.func) or dotted(call.func) or "")
            if any(w in name for w in ("all_gather", "all_reduce", "barrier")):
                return True
        return False

    def _plain(self, facts, value, at, depth: int = 0) -> bool:
        """A plain (per-process) value: not a literal, not a metric object, not a value
        a metric computed or that was reduced across processes."""
        if literal_value(value) is not NOT_LITERAL:
            return False
        if (dotted(value) or "").startswith("self.") or _SAME_ON_EVERY_RANK.search(_code(value)):
            return False  # module state (epoch, step, learning rate): the same in every process
        table = facts.metrics
        scoped = {(id(m.owner), m.key): m for m in table.objects}
        if resolve(facts, scoped, dotted(value), at) is not None:
            return False  # a metric object syncs itself
        if isinstance(value, cst.Call):
            if id(value) in table.by_call:
                return False  # compute() syncs; a batch value is EL401's concern
            mc = method_call(value)
            if mc is not None and mc[1] in ("item", "detach", "cpu", "float", "mean") and not value.args:
                return self._plain(facts, mc[0], at, depth)
            name = facts.qualify(value.func) or dotted(value.func) or ""
            if any(w in last_part(name) for w in _SYNCED_WORDS):
                return False
        if isinstance(value, cst.Name) and depth < 3:
            bound = assigned_value(facts.index, value.value, at)
            if bound is not None:
                return self._plain(facts, bound, at, depth + 1)
        return True

    VALID = [
        # sync_dist=True given (Lightning's documented way)
        """
        import lightning as L
        import torch.nn.functional as F

        class Lit(L.LightningModule):
            def validation_step(self, batch, batch_idx):
                x, y = batch
                loss = F.cross_entropy(self(x), y)
                self.log("val_loss", loss, sync_dist=True)

        trainer = L.Trainer(accelerator="gpu", devices=4, strategy="ddp")
        trainer.fit(Lit())
        """,
        # a single-device Trainer
        """
        import lightning as L
        import torch.nn.functional as F

        class Lit(L.LightningModule):
            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.log("val_loss", F.cross_entropy(self(x), y))

        trainer = L.Trainer(accelerator="gpu", devices=1)
        trainer.fit(Lit())
        """,
        # metric objects and compute() values synchronise themselves
        """
        import pytorch_lightning as pl
        import torchmetrics

        class Lit(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.val_acc = torchmetrics.Accuracy(task="binary")
                self.val_auroc = torchmetrics.AUROC(task="binary")

            def validation_step(self, batch, batch_idx):
                x, y = batch
                p = self(x)
                self.val_acc(p, y)
                self.val_auroc.update(p, y)
                self.log("val_acc", self.val_acc)

            def on_validation_epoch_end(self):
                self.log("val_auroc", self.val_auroc.compute())
                self.val_auroc.reset()

        model = Lit()
        trainer = pl.Trainer(devices=[0, 1], strategy="ddp")
        trainer.fit(model)
        """,
        # testing on one device after fitting on four (Lightning's advice for exact test numbers)
        """
        import lightning as L

        class Lit(L.LightningModule):
            def test_step(self, batch, batch_idx):
                x, y = batch
                self.log("test_loss", self.loss(self(x), y))

        model = Lit()
        L.Trainer(devices=4, strategy="ddp").fit(model)
        L.Trainer(devices=1).test(model)
        """,
        # devices from the command line: cannot tell
        """
        import lightning as L

        class Lit(L.LightningModule):
            def validation_step(self, batch, batch_idx):
                self.log("val_loss", self.loss(batch))

        trainer = L.Trainer(devices=args.devices, strategy=args.strategy)
        trainer.fit(Lit())
        """,
    ]
    INVALID = [
        Invalid(
            """
            import lightning as L
            import torch.nn.functional as F

            class Lit(L.LightningModule):
                def validation_step(self, batch, batch_idx):
                    x, y = batch
                    loss = F.cross_entropy(self(x), y)
                    self.log("val_loss", loss, prog_bar=True)

            if __name__ == "__main__":
                model = Lit()
                trainer = L.Trainer(accelerator="gpu", devices=4, strategy="ddp")
                trainer.fit(model)
            """,
            line=8, column=9,
            fixed="""
            import lightning as L
            import torch.nn.functional as F

            class Lit(L.LightningModule):
                def validation_step(self, batch, batch_idx):
                    x, y = batch
                    loss = F.cross_entropy(self(x), y)
                    self.log("val_loss", loss, prog_bar=True, sync_dist=True)

            if __name__ == "__main__":
                model = Lit()
                trainer = L.Trainer(accelerator="gpu", devices=4, strategy="ddp")
                trainer.fit(model)
            """,
        ),
        # log_dict in an epoch-end hook, several nodes
        Invalid(
            """
            import pytorch_lightning as pl
            import torch

            class Lit(pl.LightningModule):
                def test_step(self, batch, batch_idx):
                    x, y = batch
                    self.outputs.append((self(x).argmax(1) == y).float())

                def on_test_epoch_end(self):
                    acc = torch.cat(self.outputs).mean()
                    self.log_dict({"test_acc": acc})

            trainer = pl.Trainer(devices=8, num_nodes=2)
            trainer.test(Lit(), dataloaders=test_loader)
            """,
            line=11, column=9,
            fixed="""
            import pytorch_lightning as pl
            import torch

            class Lit(pl.LightningModule):
                def test_step(self, batch, batch_idx):
                    x, y = batch
                    self.outputs.append((self(x).argmax(1) == y).float())

                def on_test_epoch_end(self):
                    acc = torch.cat(self.outputs).mean()
                    self.log_dict({"test_acc": acc}, sync_dist=True)

            trainer = pl.Trainer(devices=8, num_nodes=2)
            trainer.test(Lit(), dataloaders=test_loader)
            """,
        ),
    ]
