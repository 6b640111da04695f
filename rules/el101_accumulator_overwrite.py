"""EL101 accumulator-overwrite."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ML_TOKENS, ModuleFacts
from evallint.facts.exprs import number, simple_assignment, value_assigned
from evallint.facts.flow import last_assignment_before, reached_reads_after, statements_in
from evallint.facts.walk import walk
from evallint.rule import Change, Finding, Invalid, Rule

# Calls whose result is a per-batch count or metric.
_COUNT_CALLS = {"sum", "item", "count_nonzero", "eq", "numel", "size", "len", "mean", "float",
                "accuracy_score", "nonzero"}


def is_mean_expression(expr: cst.BaseExpression) -> bool:
    """A per-batch mean (`.mean()`): summing it gives a sum of means, not a count."""
    calls = {n.func.attr.value for n in walk(expr) if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute)}
    return "mean" in calls and not calls & {"sum", "count_nonzero"}


def is_count_expression(expr: cst.BaseExpression) -> bool:
    for node in walk(expr):
        if isinstance(node, cst.Comparison) and any(isinstance(c.operator, cst.Equal) for c in node.comparisons):
            return True
        if isinstance(node, cst.Call):
            func = node.func
            name = func.attr.value if isinstance(func, cst.Attribute) else (func.value if isinstance(func, cst.Name) else "")
            if name in _COUNT_CALLS or "accuracy" in name or "correct" in name:
                return True
        if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Attribute) and node.value.attr.value == "shape":
            return True
    return False


class AccumulatorOverwrite(Rule):
    """
    ## What it does
    Flags a plain assignment (`=`) inside a loop over batches to a counter that is
    initialised before the loop and read after it, when the right-hand side is a
    per-batch count or metric, e.g. `correct = (pred == y).sum().item()`. Batch
    loops include index loops (`for i in range(0, len(X), bs)`) and `while` loops
    that slice tensors; a `for` loop's `else:` clause runs once and is not the body.
    "Read after the loop" means a read the loop's last value reaches: a later reset
    (`correct = 0` before another loop, in the same or a later notebook cell) ends it.

    ## Why it is wrong
    Each batch overwrites the previous value, so after the loop the counter holds the
    last batch only. Divided by an accumulated total it reports last-batch-correct /
    all samples: an accuracy that looks plausible and is silently wrong.

    ## Example
    ```python
    correct = 0
    total = 0
    for images, labels in test_loader:
        _, predicted = torch.max(model(images), 1)
        total += labels.size(0)
        correct = (predicted == labels).sum().item()
    print(100 * correct / total)
    ```

    ## Fix
    Accumulate with `+=`: `correct += (predicted == labels).sum().item()`. The fix is
    safe when the counter starts at 0 before the loop; otherwise it is only explained.

    ## References
    - chainer/chainer#777
    - jefflai108/Contrastive-Predictive-Coding-PyTorch#15
    """

    code = "EL101"
    name = "accumulator-overwrite"
    summary = "A per-batch count overwrites the accumulator (`=` instead of `+=`)."
    severity = Severity.ERROR
    fixable = Applicability.SAFE
    tokens = ML_TOKENS
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_ml:
            return
        for loop in facts.batch_loops:
            # the repeated body only: a `for` loop's `else:` clause runs once, after it
            inside = [s for s in statements_in(loop.stmt, facts.index) if loop in facts.loops_around(s)]
            for stmt in inside:
                if facts.loops_around(stmt)[:1] != [loop]:
                    continue  # belongs to a nested loop, checked with that loop
                pair = simple_assignment(stmt.node)
                if pair is None:
                    continue
                name, value = pair
                finding = self._check_assignment(facts, loop, inside, stmt, name, value)
                if finding is not None:
                    yield finding

    def _check_assignment(self, facts, loop, inside, stmt, name, value):
        finding = self._overwritten_then_added(facts, loop, inside, stmt, name)
        if finding is not None:
            return finding
        if name in stmt.loads or not is_count_expression(value):
            return None  # `x = x + ...` and `best = max(best, x)` read it: not an overwrite
        if any(name in s.loads for s in inside if s.order < stmt.order):
            return None  # read earlier in the loop: a per-batch value
        later = [s for s in inside if s.order > stmt.order]
        if any(name in s.loads and isinstance(s.node, cst.AugAssign) for s in later):
            return None  # feeds another accumulator: a per-batch value by design
        mean = is_mean_expression(value)
        if mean and any(name in s.loads for s in later):
            return None  # a per-batch mean used inside the loop: its last value may be meant
        if any(name in s.stores and isinstance(s.node, cst.AugAssign) for s in inside):
            return None  # also accumulated: the `=` is a deliberate reset
        if not reached_reads_after(facts.index, name, loop.stmt):
            return None
        init = last_assignment_before(facts.index, name, loop.stmt)
        init_value = value_assigned(init.node, name) if init is not None else None
        starts_at = number(init_value) if init_value is not None else None
        sibling = any(isinstance(s.node, cst.AugAssign) and isinstance(s.node.operator, cst.AddAssign)
                      for s in inside)
        if starts_at is None and not (init is None and sibling):
            return None
        message = (f"`{name}` is overwritten on every batch, so after the loop it holds the last "
                   f"batch only; accumulate it with `+=`")
        fix = None
        if starts_at == 0:
            node = stmt.node
            target = node.targets[0]
            aug = cst.AugAssign(target=target.target,
                                operator=cst.AddAssign(whitespace_before=target.whitespace_before_equal,
                                                       whitespace_after=target.whitespace_after_equal),
                                value=node.value)
            # Summing per-batch means is right only if the total is divided by the number of
            # batches afterwards: unsafe.
            fix = self.fix(Applicability.UNSAFE if mean else Applicability.SAFE,
                           f"Accumulate `{name}` with `+=`", Change(node, aug))
        return Finding(stmt.node, message, fix)

    def _overwritten_then_added(self, facts, loop, inside, stmt, name):
        """`loss = criterion(out, y)` then `loss += loss.item()` (pytorch/tutorials#1333):
        the running total is replaced by each batch's value before it is added to, so
        after the loop it holds twice the last batch. Explained only: the fix needs a
        second name."""
        if name in stmt.loads or stmt.index + 1 >= len(stmt.block):
            return None
        following = stmt.block[stmt.index + 1]
        node = following.node
        if not (isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign)
                and isinstance(node.target, cst.Name) and node.target.value == name and name in following.loads):
            return None
        for a in stmt.ancestors():  # runs on every iteration: no branch between it and the loop
            if a is loop.stmt:
                break
            if isinstance(a.node, (cst.If, cst.Try, cst.TryStar, cst.Match, cst.For, cst.While)):
                return None
        if any(name in s.loads for s in inside if s.order < stmt.order):
            return None
        init = last_assignment_before(facts.index, name, loop.stmt)
        init_value = value_assigned(init.node, name) if init is not None else None
        if init_value is None or number(init_value) is None:
            return None
        if not reached_reads_after(facts.index, name, loop.stmt):
            return None
        return Finding(stmt.node, f"`{name}` is overwritten by each batch's value before `{name} += ...` adds to "
                                  f"it, so the running total is lost; accumulate into another name")

    VALID = [
        # accumulated correctly (official tutorial style)
        """
        import torch
        correct = 0
        total = 0
        with torch.no_grad():
            for images, labels in testloader:
                outputs = net(images)
                _, predicted = torch.max(outputs, 1)
                total += labels.size(0)
                correct += (predicted == labels).sum().item()
        print(100 * correct // total)
        """,
        # per-batch value used only inside the loop
        """
        import torch
        for x, y in val_loader:
            correct = (model(x).argmax(1) == y).sum().item()
            print(f"batch accuracy {correct / len(y):.3f}")
        """,
        # running maximum reads the old value
        """
        import torch
        best = 0.0
        for x, y in val_loader:
            acc = (model(x).argmax(1) == y).float().mean().item()
            best = max(best, acc)
        print(best)
        """,
        # a per-batch loss added to a separate total
        """
        import torch
        total = 0.0
        for x, y in test_loader:
            loss = criterion(model(x), y)
            total += loss.item()
        print(total)
        """,
        # explicit x = x + ...
        """
        import torch
        correct = 0
        for x, y in test_loader:
            correct = correct + (model(x).argmax(1) == y).sum().item()
        print(correct)
        """,
        # per-batch value feeding another accumulator
        """
        import torch
        correct = 0
        total_correct = 0
        for x, y in test_loader:
            correct = (model(x).argmax(1) == y).sum().item()
            total_correct += correct
        print(total_correct, correct)
        """,
        # a per-batch mean read inside the loop, last value returned
        """
        import torch
        def evaluate(model, test_loader):
            acc = 0
            for x, y in test_loader:
                acc = (model(x).argmax(1) == y).float().mean().item()
                print("batch acc", acc)
            return acc
        """,
        # single-batch evaluation outside any loop
        """
        import torch
        correct = 0
        x, y = next(iter(test_loader))
        correct = (model(x).argmax(1) == y).sum().item()
        print(correct / len(y))
        """,
        # a loop over epochs, not batches
        """
        import numpy as np
        loss = 0
        for epoch in range(10):
            loss = np.mean(run_epoch())
        print(loss)
        """,
        # not an ML script: nothing to say
        """
        hits = 0
        for row, expected in rows_loader:
            hits = (row == expected).sum()
        print(hits)
        """,
        # the `else:` clause of a `for` loop runs once, after the loop
        """
        import torch
        hits, total, correct = 0, 0, 0
        with torch.no_grad():
            for x, y in test_loader:
                preds = model(x).argmax(1)
                total += y.size(0)
                correct += (preds == y).sum().item()
            else:
                hits = (preds == y).sum().item()
        print(correct / total, "last batch:", hits)
        """,
        # the read after the loop sees a later reset, not the loop's last value
        """
        import torch
        correct, seen = 0, 0
        for x, y in test_loader:
            seen += y.size(0)
            correct = (model(x).argmax(1) == y).sum().item()
            print(correct, seen)

        with torch.no_grad():
            correct = 0
            for x, y in test_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        print(correct / seen)
        """,
        # an index loop over results, with no model: not a batch loop
        """
        import numpy as np
        matches = 0
        for i in range(len(runs)):
            matches = (runs[i] == reference).sum()
        print(matches)
        """,
    ]
    INVALID = [
        # the tutorial slip: the total is replaced, then the batch value added to itself
        Invalid(
            """
            import torch
            def test(model, loader):
                loss, acc = 0, 0
                for text, offsets, cls in loader:
                    with torch.no_grad():
                        output = model(text, offsets)
                        loss = criterion(output, cls)
                        loss += loss.item()
                        acc += (output.argmax(1) == cls).sum().item()
                return loss / len(loader.dataset), acc / len(loader.dataset)
            """,
            line=7, column=13, message_contains="running total",
        ),
        Invalid(
            """
            import torch
            correct = 0
            total = 0
            with torch.no_grad():
                for images, labels in testloader:
                    outputs = net(images)
                    _, predicted = torch.max(outputs, 1)
                    total += labels.size(0)
                    correct = (predicted == labels).sum().item()
            print(100 * correct / total)
            """,
            line=9, column=9,
            fixed="""
            import torch
            correct = 0
            total = 0
            with torch.no_grad():
                for images, labels in testloader:
                    outputs = net(images)
                    _, predicted = torch.max(outputs, 1)
                    total += labels.size(0)
                    correct += (predicted == labels).sum().item()
            print(100 * correct / total)
            """,
        ),
        # no initialisation, but a sibling accumulator: explained, not fixed
        Invalid(
            """
            import torch
            def test(model, test_loader):
                n_samples = 0
                for images, labels in test_loader:
                    predictions = model(images).argmax(1)
                    n_samples += labels.shape[0]
                    n_correct = (predictions == labels).sum().item()
                return n_correct / n_samples
            """,
            line=7, column=9,
        ),
        # tuple initialisation, the most common way to write it
        Invalid(
            """
            import torch
            correct, total = 0, 0
            with torch.no_grad():
                for x, y in test_loader:
                    correct = (model(x).argmax(1) == y).sum().item()
                    total += y.size(0)
            print(correct / total)
            """,
            line=5, column=9,
            fixed="""
            import torch
            correct, total = 0, 0
            with torch.no_grad():
                for x, y in test_loader:
                    correct += (model(x).argmax(1) == y).sum().item()
                    total += y.size(0)
            print(correct / total)
            """,
        ),
        # chained initialisation and a metric helper; a mean makes the fix unsafe
        Invalid(
            """
            import torch
            acc = total = 0
            for x, y in val_loader:
                acc = accuracy(model(x), y)
            print(acc / len(val_loader))
            """,
            line=4, column=5,
            fixed="""
            import torch
            acc = total = 0
            for x, y in val_loader:
                acc += accuracy(model(x), y)
            print(acc / len(val_loader))
            """,
        ),
        # the loss counterpart, inside an epoch loop
        Invalid(
            """
            import torch
            for epoch in range(3):
                val_loss = 0.0
                for x, y in val_loader:
                    val_loss = criterion(model(x), y).item()
                print(val_loss / len(val_loader))
            """,
            line=5, column=9,
            fixed="""
            import torch
            for epoch in range(3):
                val_loss = 0.0
                for x, y in val_loader:
                    val_loss += criterion(model(x), y).item()
                print(val_loss / len(val_loader))
            """,
        ),
        # a batch loop written by index
        Invalid(
            """
            import torch
            def evaluate(model, X, y, batch_size=64):
                correct = 0
                for i in range(0, len(X), batch_size):
                    preds = model(X[i:i + batch_size]).argmax(1)
                    correct = (preds == y[i:i + batch_size]).sum().item()
                return correct / len(X)
            """,
            line=6, column=9,
            fixed="""
            import torch
            def evaluate(model, X, y, batch_size=64):
                correct = 0
                for i in range(0, len(X), batch_size):
                    preds = model(X[i:i + batch_size]).argmax(1)
                    correct += (preds == y[i:i + batch_size]).sum().item()
                return correct / len(X)
            """,
        ),
        # a `while` loop that pops sample indices
        Invalid(
            """
            import torch
            pending = list(range(len(test_X)))
            hits, seen = 0, 0
            while pending:
                idx = pending.pop()
                out = model(test_X[idx:idx + 1])
                seen += 1
                hits = (out.argmax(1) == test_Y[idx:idx + 1]).sum().item()
            print(hits / seen)
            """,
            line=8, column=5,
            fixed="""
            import torch
            pending = list(range(len(test_X)))
            hits, seen = 0, 0
            while pending:
                idx = pending.pop()
                out = model(test_X[idx:idx + 1])
                seen += 1
                hits += (out.argmax(1) == test_Y[idx:idx + 1]).sum().item()
            print(hits / seen)
            """,
        ),
    ]
