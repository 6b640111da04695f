"""EL104 fixed-batch-size-count."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.accumulators import BATCH_SIZE, COUNT, loop_loader
from evallint.facts.flow import reads_after
from evallint.rule import Change, Finding, Invalid, Rule


def label_name(loop) -> Optional[str]:
    """`for x, y in loader` / `for i, (x, y) in enumerate(loader)` -> "y"."""
    target = loop.node.target
    iter_ = loop.node.iter
    if isinstance(iter_, cst.Call) and isinstance(iter_.func, cst.Name) and iter_.func.value == "enumerate":
        if not (isinstance(target, cst.Tuple) and len(target.elements) == 2):
            return None
        target = target.elements[1].value
    if isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2 \
            and all(isinstance(e.value, cst.Name) for e in target.elements):
        return target.elements[1].value.value
    return None


def _size_of(label: str) -> cst.BaseExpression:
    return cst.parse_expression(f"{label}.size(0)")


class FixedBatchSizeCount(Rule):
    """
    ## What it does
    Flags a sample total that adds the constant batch size on every batch
    (`total += batch_size`), and a per-batch ratio divided by it
    (`acc = correct / batch_size`), in a loop over a loader that keeps its short last
    batch (no `drop_last=True`).

    ## Why it is wrong
    Unless the dataset size is a multiple of the batch size, the last batch is
    shorter: the total counts samples that were never seen and the last batch's
    accuracy is divided by too much. Accuracy comes out too low, by up to
    (batch_size − 1) / N.

    ## Example
    ```python
    for images, labels in test_loader:
        correct += (model(images).argmax(1) == labels).sum().item()
        total += batch_size
    ```

    ## Fix
    Count the samples of each batch: `total += labels.size(0)`. The fix is safe when the
    loop unpacks `(inputs, labels)`; otherwise it is explained. A loader built with
    `drop_last=True` has no short batch and is not flagged.

    ## References
    - chainer/chainer#777
    """

    code = "EL104"
    name = "fixed-batch-size-count"
    summary = "`total += batch_size` counts a full batch for the short last batch too."
    severity = Severity.WARNING
    fixable = Applicability.SAFE
    tokens = (("batch", "Batch", "BATCH", "bs", "b_size"), TORCH_TOKENS)
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for acc in facts.accumulators:
            if acc.value.kind != BATCH_SIZE or not self._short_last_batch(facts, acc.loop):
                continue
            if not reads_after(facts.index, acc.name, acc.loop.stmt):
                continue
            label = label_name(acc.loop)
            for stmt, value in zip(acc.updates, acc.values):
                fix = None
                if label is not None:
                    fix = self.fix(Applicability.SAFE, f"Count the batch's samples, `{label}.size(0)`",
                                   Change(value, _size_of(label)))
                yield Finding(value, f"`{acc.name}` adds the full batch size for every batch, also for the "
                                     f"short last one; count the batch's samples instead", fix)
        yield from self._per_batch_ratios(facts)

    def _per_batch_ratios(self, facts):
        analysis = facts.accumulator_analysis
        for binop, stmt in facts.index.binops:
            if not isinstance(binop.operator, cst.Divide):
                continue
            loops = [l for l in facts.enclosing_loops(stmt) if facts.is_batch_loop(l)]
            if not loops:
                continue
            loop = loops[0]
            if analysis.value_kind(binop.right, stmt, loop).kind != BATCH_SIZE \
                    or analysis.value_kind(binop.left, stmt, loop).kind != COUNT:
                continue
            if not self._short_last_batch(facts, loop):
                continue
            label = label_name(loop)
            fix = None
            if label is not None:
                fix = self.fix(Applicability.SAFE, f"Divide by the batch's samples, `{label}.size(0)`",
                               Change(binop.right, _size_of(label)))
            yield Finding(binop.right, "A per-batch count divided by the constant batch size is wrong for the "
                                       "short last batch; divide by the batch's own size", fix)

    @staticmethod
    def _short_last_batch(facts, loop) -> bool:
        """The loop runs over a loader whose last batch may be short."""
        is_loader, info = loop_loader(facts, loop)
        return is_loader and info is not None and info.drop_last is False and info.batch_size != 1

    VALID = [
        # counting the samples of each batch
        """
        import torch
        from torch.utils.data import DataLoader
        test_loader = DataLoader(test_set, batch_size=batch_size)
        correct = total = 0
        for images, labels in test_loader:
            correct += (model(images).argmax(1) == labels).sum().item()
            total += labels.size(0)
        print(correct / total)
        """,
        # drop_last=True: every batch is full
        """
        import torch
        from torch.utils.data import DataLoader
        batch_size = 64
        test_loader = DataLoader(test_set, batch_size=batch_size, drop_last=True)
        correct = total = 0
        for images, labels in test_loader:
            correct += (model(images).argmax(1) == labels).sum().item()
            total += batch_size
        print(correct / total)
        """,
        # an unresolved loader: drop_last unknown
        """
        import torch
        def evaluate(model, loader, batch_size):
            correct = total = 0
            for x, y in loader:
                correct += (model(x).argmax(1) == y).sum().item()
                total += batch_size
            return correct / total
        """,
        # a per-batch loss divided by the batch size is a mean, not a count
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(ds, batch_size=bs)
        for x, y in loader:
            loss = criterion(model(x), y) / bs
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            batch_size = 64
            test_loader = DataLoader(test_set, batch_size=batch_size, shuffle=False)
            correct = total = 0
            with torch.no_grad():
                for images, labels in test_loader:
                    correct += (model(images).argmax(1) == labels).sum().item()
                    total += batch_size
            print(correct / total)
            """,
            line=9, column=18,
            fixed="""
            import torch
            from torch.utils.data import DataLoader
            batch_size = 64
            test_loader = DataLoader(test_set, batch_size=batch_size, shuffle=False)
            correct = total = 0
            with torch.no_grad():
                for images, labels in test_loader:
                    correct += (model(images).argmax(1) == labels).sum().item()
                    total += labels.size(0)
            print(correct / total)
            """,
        ),
        # per-batch accuracy divided by the constant
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            loader = DataLoader(val_set, batch_size=args.batch_size)
            accs = []
            for i, (x, y) in enumerate(loader):
                correct = (model(x).argmax(1) == y).sum().item()
                accs.append(correct / args.batch_size)
            """,
            line=7, column=27,
            fixed="""
            import torch
            from torch.utils.data import DataLoader
            loader = DataLoader(val_set, batch_size=args.batch_size)
            accs = []
            for i, (x, y) in enumerate(loader):
                correct = (model(x).argmax(1) == y).sum().item()
                accs.append(correct / y.size(0))
            """,
        ),
        # a batch dict: explained, no fix
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            BATCH_SIZE = 32
            val_loader = DataLoader(val_ds, batch_size=BATCH_SIZE)
            seen = 0
            for batch in val_loader:
                logits = model(batch["input_ids"])
                seen += BATCH_SIZE
            print(seen)
            """,
            line=8, column=13,
        ),
    ]
