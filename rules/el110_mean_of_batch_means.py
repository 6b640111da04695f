"""EL110 mean-of-batch-means."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.accumulators import BATCH_MEAN, BY_BATCHES, loop_loader
from evallint.rule import Finding, Invalid, Rule


class MeanOfBatchMeans(Rule):
    """
    ## What it does
    Flags an accuracy computed as the average of per-batch accuracies: each batch's
    `(pred == y).float().mean()` (or `correct / y.size(0)`, or `accuracy_score`)
    summed and divided by the number of batches.

    ## Why it is wrong
    Every batch counts the same, whatever its size, so the short last batch weighs as
    much as a full one: with 1,000 samples in batches of 64 the last 40 samples carry
    the weight of 64. The result is close to the true accuracy but not equal to it, and
    it changes with the batch size.

    ## Example
    ```python
    for x, y in val_loader:
        acc_sum += (model(x).argmax(1) == y).float().mean().item()
    print(acc_sum / len(val_loader))
    ```

    ## Fix
    Count correct predictions and samples (`correct += (pred == y).sum().item()`,
    `total += y.size(0)`) and divide once. No automatic fix. Loaders with
    `drop_last=True` or a batch size of 1 have equal batches and are not flagged; loss
    averages are EL107's concern.

    ## References
    - A common shape in training templates; torchmetrics' `Accuracy` accumulates counts
      for this reason.
    """

    code = "EL110"
    name = "mean-of-batch-means"
    summary = "An accuracy averaged over batches over-weights the short last batch."
    severity = Severity.INFO
    fixable = None
    tokens = (("/",), TORCH_TOKENS)
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for acc in facts.accumulators:
            value = acc.value
            if value.kind != BATCH_MEAN or value.metric != "accuracy":
                continue
            is_loader, info = loop_loader(facts, acc.loop)
            if not is_loader or (info is not None and (info.drop_last is True or info.batch_size == 1)):
                continue
            if any(div.by == BY_BATCHES for div in facts.divisions_of(acc)):
                # Reported where the per-batch mean is added: that is what has to change.
                yield Finding(acc.values[0],
                              f"`{acc.name}` adds up per-batch accuracies and is averaged over batches, so the "
                              f"short last batch weighs as much as a full one; count correct predictions and "
                              f"samples instead")

    VALID = [
        # counts divided once
        """
        import torch
        correct = total = 0
        for x, y in val_loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += y.size(0)
        print(correct / total)
        """,
        # equal batches: drop_last
        """
        import torch
        from torch.utils.data import DataLoader
        val_loader = DataLoader(val_set, batch_size=50, drop_last=True)
        acc_sum = 0.0
        for x, y in val_loader:
            acc_sum += (model(x).argmax(1) == y).float().mean().item()
        print(acc_sum / len(val_loader))
        """,
        # a mean loss over batches is EL107's territory (and correct there)
        """
        import torch
        import torch.nn as nn
        criterion = nn.CrossEntropyLoss()
        total = 0.0
        for x, y in val_loader:
            total += criterion(model(x), y).item()
        print(total / len(val_loader))
        """,
        # a loop over single samples
        """
        import torch
        acc = 0.0
        for x, y in test_dataset:
            acc += (model(x).argmax(1) == y).float().mean().item()
        print(acc / len(test_dataset))
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            acc_sum = 0.0
            with torch.no_grad():
                for x, y in val_loader:
                    acc_sum += (model(x).argmax(1) == y).float().mean().item()
            print(acc_sum / len(val_loader))
            """,
            line=5, column=20,
        ),
        # per-batch ratio through a name, averaged by an enumerate index
        Invalid(
            """
            import torch
            running_acc = 0.0
            for i, (images, labels) in enumerate(test_loader):
                preds = model(images).argmax(dim=1)
                batch_acc = (preds == labels).sum().item() / labels.size(0)
                running_acc += batch_acc
                print(f"acc so far {running_acc / (i + 1):.3f}")
            """,
            line=6, column=20,
        ),
    ]
