"""EL107 loss-normaliser-mismatch."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.accumulators import BATCH_MEAN, BATCH_SUM, BY_BATCHES, BY_SAMPLES, loop_loader, peel
from evallint.rule import Change, Finding, Invalid, Rule


def _len_call(expr):
    expr = peel(expr)
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "len" \
            and len(expr.args) == 1 and expr.args[0].keyword is None and not expr.args[0].star:
        return expr
    return None


class LossNormaliserMismatch(Rule):
    """
    ## What it does
    Flags a loss total whose normaliser does not match the loss's reduction:
    mean-reduced batch losses (the default) summed and divided by the number of
    samples (`len(loader.dataset)`, a sample counter), or sum-reduced batch losses
    divided by the number of batches (`len(loader)`, a batch counter, `i + 1`).

    ## Why it is wrong
    A mean-reduced loss is already an average over the batch: summing the batch means
    and dividing by the number of samples divides by the batch size once more, so the
    reported loss is about batch_size times too small. A sum-reduced loss divided by the
    number of batches is batch_size times too large. Curves from runs with different
    batch sizes can no longer be compared.

    ## Example
    ```python
    criterion = nn.CrossEntropyLoss()
    for x, y in val_loader:
        val_loss += criterion(model(x), y).item()
    val_loss /= len(val_loader.dataset)
    ```

    ## Fix
    Weight each batch mean by its size (`criterion(out, y).item() * x.size(0)`), or
    divide mean losses by the number of batches; divide summed losses by the number of
    samples. The offered fix swaps `len(loader.dataset)` and `len(loader)`; it is unsafe
    (a weighted mean per sample may be what was meant). `loss.item() * x.size(0)`
    divided by the number of samples is correct and not flagged, nor are custom losses
    whose reduction cannot be told.

    ## References
    - pytorch/tutorials#179
    """

    code = "EL107"
    name = "loss-normaliser-mismatch"
    summary = "Mean-reduced losses divided by samples, or sum-reduced losses by batches."
    severity = Severity.ERROR
    fixable = Applicability.UNSAFE
    tokens = (("/",), TORCH_TOKENS)
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for acc in facts.accumulators:
            value = acc.value
            if value.metric != "loss" or value.kind not in (BATCH_MEAN, BATCH_SUM):
                continue
            is_loader, info = loop_loader(facts, acc.loop)
            if not is_loader or (info is not None and info.batch_size == 1):
                continue
            wrong = BY_SAMPLES if value.kind == BATCH_MEAN else BY_BATCHES
            for div in facts.divisions_of(acc):
                if div.by != wrong:
                    continue
                yield Finding(div.denominator, self._message(acc.name, value), self._fix(div, value.kind))

    @staticmethod
    def _message(name, value) -> str:
        loss = value.loss.short if value.loss is not None else "the loss"
        if value.kind == BATCH_MEAN:
            return (f"`{name}` sums per-batch means ({loss} reduces with 'mean') but is divided by the number "
                    f"of samples: the result is about batch_size times too small")
        return (f"`{name}` sums per-batch sums ({loss} reduces with 'sum') but is divided by the number of "
                f"batches: the result is about batch_size times too large")

    def _fix(self, div, kind):
        call = _len_call(div.denominator)
        if call is None:
            return None
        arg = call.args[0].value
        if kind == BATCH_MEAN and isinstance(arg, cst.Attribute) and arg.attr.value == "dataset":
            new = call.with_changes(args=[call.args[0].with_changes(value=arg.value)])
            return self.fix(Applicability.UNSAFE, "Divide the sum of batch means by the number of batches",
                            Change(call, new))
        if kind == BATCH_SUM and div.loader is not None and not (isinstance(arg, cst.Attribute)):
            new = call.with_changes(args=[call.args[0].with_changes(
                value=cst.Attribute(arg, cst.Name("dataset")))])
            return self.fix(Applicability.UNSAFE, "Divide the sum of per-sample losses by the number of samples",
                            Change(call, new))
        return None

    VALID = [
        # per-sample weighting, divided by the number of samples
        """
        import torch
        import torch.nn as nn
        criterion = nn.CrossEntropyLoss()
        running_loss = 0.0
        for inputs, labels in train_loader:
            loss = criterion(model(inputs), labels)
            loss.backward()
            running_loss += loss.item() * inputs.size(0)
        epoch_loss = running_loss / len(train_loader.dataset)
        """,
        # mean losses divided by the number of batches
        """
        import torch
        import torch.nn as nn
        criterion = nn.CrossEntropyLoss()
        val_loss = 0.0
        with torch.no_grad():
            for x, y in val_loader:
                val_loss += criterion(model(x), y).item()
        print(val_loss / len(val_loader))
        """,
        # sum reduction divided by the number of samples (pytorch/examples MNIST)
        """
        import torch
        import torch.nn.functional as F
        test_loss = 0
        with torch.no_grad():
            for data, target in test_loader:
                output = model(data)
                test_loss += F.nll_loss(output, target, reduction="sum").item()
        test_loss /= len(test_loader.dataset)
        """,
        # a custom loss: its reduction is unknown
        """
        import torch
        criterion = FocalLoss()
        total = 0.0
        for x, y in val_loader:
            total += criterion(model(x), y).item()
        print(total / len(val_loader.dataset))
        """,
        # a loop over a dataset yields single samples
        """
        import torch
        import torch.nn as nn
        criterion = nn.MSELoss()
        total = 0.0
        for x, y in test_dataset:
            total += criterion(model(x), y).item()
        print(total / len(test_dataset))
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn
            criterion = nn.CrossEntropyLoss()
            val_loss = 0.0
            with torch.no_grad():
                for x, y in val_loader:
                    val_loss += criterion(model(x), y).item()
            val_loss /= len(val_loader.dataset)
            """,
            line=8, column=13,
            fixed="""
            import torch
            import torch.nn as nn
            criterion = nn.CrossEntropyLoss()
            val_loss = 0.0
            with torch.no_grad():
                for x, y in val_loader:
                    val_loss += criterion(model(x), y).item()
            val_loss /= len(val_loader)
            """,
        ),
        # sum reduction divided by the batch count of an enumerate
        Invalid(
            """
            import torch
            import torch.nn as nn
            loss_fn = nn.MSELoss(reduction="sum")
            total = 0.0
            for i, (x, y) in enumerate(train_loader):
                loss = loss_fn(model(x), y)
                loss.backward()
                total += loss.item()
                print(f"running loss {total / (i + 1):.4f}")
            """,
            line=9, column=35,
        ),
        # a sample counter and a functional loss
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            def evaluate(model, loader):
                loss_sum, n = 0.0, 0
                with torch.no_grad():
                    for x, y in loader:
                        loss_sum += F.cross_entropy(model(x), y).item()
                        n += y.size(0)
                return loss_sum / n
            """,
            line=9, column=23,
        ),
    ]
