"""EL103 batch-count-denominator."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.accumulators import BY_BATCHES, COUNT, loop_loader, peel
from evallint.rule import Change, Finding, Invalid, Rule


def len_of(expr):
    """`len(x)` -> the `x` argument node, else None."""
    expr = peel(expr)
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "len" \
            and len(expr.args) == 1 and expr.args[0].keyword is None and not expr.args[0].star:
        return expr
    return None


def with_dataset(call: cst.Call) -> cst.Call:
    """`len(loader)` -> `len(loader.dataset)`."""
    arg = call.args[0]
    return call.with_changes(args=[arg.with_changes(value=cst.Attribute(arg.value, cst.Name("dataset")))])


class BatchCountDenominator(Rule):
    """
    ## What it does
    Flags a count of correct predictions, accumulated over a loader's batches, that is
    divided by the number of batches (`len(loader)`, a batch counter, `i + 1` of an
    `enumerate`) when the loader's batch size is known and larger than 1.

    ## Why it is wrong
    `len(loader)` is the number of batches, not of samples. Correct samples divided by
    batches is inflated by the batch size: 64 × the accuracy, or an "accuracy" above
    100%. With torch_geometric's loader, too, `len(loader)` counts batches of graphs.

    ## Example
    ```python
    test_loader = DataLoader(test_set, batch_size=64)
    for x, y in test_loader:
        correct += (model(x).argmax(1) == y).sum().item()
    print(correct / len(test_loader))
    ```

    ## Fix
    Divide by the number of samples: `len(test_loader.dataset)` or a sample counter
    (`total += y.size(0)`). The fix (`len(loader)` → `len(loader.dataset)`) is unsafe: a
    sampler or `drop_last` can make the evaluated samples fewer than the dataset. A
    `DataLoader(ds)` with the default batch size 1 is not flagged: there a batch is a
    sample.

    ## References
    - MPRGDeepLearningLectureNotebook#4
    """

    code = "EL103"
    name = "batch-count-denominator"
    summary = "A sample count divided by the number of batches (`len(loader)`)."
    severity = Severity.ERROR
    fixable = Applicability.UNSAFE
    tokens = (("/",), TORCH_TOKENS)
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for acc in facts.accumulators:
            if acc.value.kind != COUNT:
                continue
            is_loader, info = loop_loader(facts, acc.loop)
            if not is_loader:
                continue
            for div in facts.divisions_of(acc):
                if div.by != BY_BATCHES:
                    continue
                loader = facts.loader_info(div.loader, div.stmt) if div.loader else info
                if loader is None or not loader.batches_len or loader.batch_size in (None, 1):
                    continue
                call = len_of(div.denominator)
                fix = None
                if call is not None and div.loader is not None:
                    fix = self.fix(Applicability.UNSAFE, "Divide by the number of samples, `len(loader.dataset)`",
                                   Change(call, with_dataset(call)))
                yield Finding(div.denominator,
                              f"`{acc.name}` counts samples but is divided by the number of batches; with "
                              f"batch_size={loader.batch_size} the result is inflated by about that factor",
                              fix)

    VALID = [
        # divided by the number of samples
        """
        import torch
        from torch.utils.data import DataLoader
        test_loader = DataLoader(test_set, batch_size=64)
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        print(correct / len(test_loader.dataset))
        """,
        # the default batch size is 1: batches are samples
        """
        import torch
        from torch.utils.data import DataLoader
        test_loader = DataLoader(test_set)
        correct = 0
        for x, y in test_loader:
            correct += (model(x).argmax(1) == y).sum().item()
        print(correct / len(test_loader))
        """,
        # mean losses divided by the number of batches: right
        """
        import torch
        from torch.utils.data import DataLoader
        val_loader = DataLoader(val_set, batch_size=32)
        running_loss = 0.0
        for x, y in val_loader:
            running_loss += criterion(model(x), y).item()
        print(running_loss / len(val_loader))
        """,
        # a sample counter
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(ds, batch_size=128)
        correct = total = 0
        for i, (x, y) in enumerate(loader):
            correct += (model(x).argmax(1) == y).sum().item()
            total += y.size(0)
        print(correct / total)
        """,
        # unknown batch size: quiet
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(ds, batch_size=args.batch_size)
        correct = 0
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
        print(correct / len(loader))
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            test_loader = DataLoader(test_set, batch_size=64)
            correct = 0
            with torch.no_grad():
                for x, y in test_loader:
                    correct += (model(x).argmax(1) == y).sum().item()
            print(100.0 * correct / len(test_loader))
            """,
            line=8, column=25,
            fixed="""
            import torch
            from torch.utils.data import DataLoader
            test_loader = DataLoader(test_set, batch_size=64)
            correct = 0
            with torch.no_grad():
                for x, y in test_loader:
                    correct += (model(x).argmax(1) == y).sum().item()
            print(100.0 * correct / len(test_loader.dataset))
            """,
        ),
        # graph classification over a torch_geometric loader, through a function parameter
        Invalid(
            """
            import torch
            from torch_geometric.loader import DataLoader
            BATCH_SIZE = 32
            def test(model, loader):
                model.eval()
                correct = 0
                for data in loader:
                    pred = model(data.x, data.edge_index, data.batch).argmax(dim=1)
                    correct += int((pred == data.y).sum())
                return correct / len(loader)
            test_loader = DataLoader(test_dataset, batch_size=BATCH_SIZE)
            print(test(model, test_loader))
            """,
            line=10, column=22,
            fixed="""
            import torch
            from torch_geometric.loader import DataLoader
            BATCH_SIZE = 32
            def test(model, loader):
                model.eval()
                correct = 0
                for data in loader:
                    pred = model(data.x, data.edge_index, data.batch).argmax(dim=1)
                    correct += int((pred == data.y).sum())
                return correct / len(loader.dataset)
            test_loader = DataLoader(test_dataset, batch_size=BATCH_SIZE)
            print(test(model, test_loader))
            """,
        ),
        # a batch counter: explained, no fix
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            val_loader = DataLoader(val_set, batch_size=16, shuffle=False)
            n_correct, steps = 0, 0
            for x, y in val_loader:
                n_correct += (model(x).argmax(1) == y).sum().item()
                steps += 1
            print(n_correct / steps)
            """,
            line=8, column=19,
        ),
    ]
