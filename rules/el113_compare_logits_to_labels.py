"""EL113 compare-logits-to-labels."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.exprs import argument, method_call, number
from evallint.facts.predictions import is_label
from evallint.facts.walk import own_expressions, walk
from evallint.rule import Change, Finding, Invalid, Rule

class CompareLogitsToLabels(Rule):
    """
    ## What it does
    Flags a model's raw output compared with the labels, with no argmax, max, round or
    threshold in between: `(outputs == labels).sum()`, `outputs.eq(labels)`. The
    output must be known to hold scores: the model is trained with a classification
    loss, or the same output is reduced with `argmax`/`max` over the classes elsewhere.

    ## Why it is wrong
    Float scores never equal integer class ids, and an (N, C) output compared with (N,)
    labels broadcasts to an N × C (or error-free but wrong) comparison. The count is
    close to zero, or counts score/label coincidences: an accuracy that means nothing.

    ## Example
    ```python
    _, predicted = torch.max(outputs, 1)
    correct += (outputs == labels).sum().item()
    ```

    ## Fix
    Compare the predicted classes: `outputs.argmax(dim=1) == labels` (or the
    `predicted` already computed). The fix is unsafe (the intended variable may be
    another one) and offered only for multi-class outputs; binary logits need a
    threshold (`outputs > 0`) and are explained only.

    ## References
    - A common slip in accuracy and loss tutorials, which print this very line.
    """

    code = "EL113"
    name = "compare-logits-to-labels"
    summary = "Raw model scores compared with class labels (no argmax/threshold)."
    severity = Severity.ERROR
    fixable = Applicability.UNSAFE
    tokens = (("==", "eq"), TORCH_TOKENS)
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        outputs, forward_stmts = self._output_names(facts)
        for stmt in facts.statements:
            if not (outputs & stmt.loads or id(stmt) in forward_stmts):
                continue  # only statements that touch a model's output are walked
            loops = [l for l in facts.enclosing_loops(stmt) if facts.is_batch_loop(l)]
            loop = loops[0] if loops else None
            for node in own_expressions(stmt.node):
                pair = self._compared(node)
                if pair is None:
                    continue
                for side, other in (pair, pair[::-1]):
                    if not is_label(facts, other, loop):
                        continue
                    out = facts.model_output(side, stmt)
                    if out is None:
                        continue
                    multiclass = out.class_scores or (not out.losses and self._reduced_over_classes(facts, side, stmt))
                    if not (out.scores or multiclass):
                        continue
                    fix = None
                    if multiclass and not _has_numpy(side):  # numpy's argmax takes axis=, not dim=
                        fix = self.fix(Applicability.UNSAFE, "Compare the predicted classes, `argmax(dim=1)`",
                                       Change(side, _argmax(side)))
                    yield Finding(side, "The model's raw scores are compared with class labels: floats never equal "
                                        "class ids; compare `argmax(dim=1)` (or a thresholded output)", fix)
                    break

    @staticmethod
    def _output_names(facts):
        """Names bound to a forward pass, and the statements that run one."""
        names, stmts = set(), set()
        for call, stmt in facts.index.calls:
            if facts.model_key(call) is None:
                continue
            stmts.add(id(stmt))
            names |= stmt.stores
        return names, stmts

    @staticmethod
    def _compared(node):
        if isinstance(node, cst.Comparison) and len(node.comparisons) == 1 \
                and isinstance(node.comparisons[0].operator, cst.Equal):
            return node.left, node.comparisons[0].comparator
        mc = method_call(node)
        if mc is not None and mc[1] == "eq" and len(node.args) == 1:
            return mc[0], node.args[0].value
        return None

    @staticmethod
    def _reduced_over_classes(facts, side, stmt) -> bool:
        """Is the same name also reduced over dim 1 (`torch.max(outputs, 1)`,
        `outputs.argmax(1)`) in this function? Then it is (N, C) scores."""
        if not isinstance(side, cst.Name):
            return False
        name = side.value
        for call, s in facts.index.calls:
            if s.function is not stmt.function:
                continue
            mc = method_call(call)
            if mc is not None and mc[1] in ("argmax", "max") and _base_is(mc[0], name):
                dim = argument(call, 0, "dim")
            elif facts.qualify(call.func) in ("torch.max", "torch.argmax") and call.args \
                    and _base_is(call.args[0].value, name):
                dim = argument(call, 1, "dim")
            else:
                continue
            if dim is not None and number(dim) in (1, -1):
                return True
        return False

    VALID = [
        """
        import torch
        correct = 0
        with torch.no_grad():
            for images, labels in test_loader:
                outputs = net(images)
                _, predicted = torch.max(outputs, 1)
                correct += (predicted == labels).sum().item()
        """,
        # a regression model compared with targets is not a classification count
        """
        import torch
        for x, y in val_loader:
            out = model(x)
            exact = (out == y).float().mean()
        """,
        # thresholded binary output
        """
        import torch
        import torch.nn as nn
        criterion = nn.BCEWithLogitsLoss()
        for x, y in train_loader:
            loss = criterion(model(x), y)
            loss.backward()
        for x, y in test_loader:
            correct += ((model(x) > 0) == y).sum().item()
        """,
        # a model that returns class ids
        """
        import torch
        for x, y in test_loader:
            preds = model.predict(x)
            correct += (preds == y).sum()
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            correct = 0
            with torch.no_grad():
                for images, labels in test_loader:
                    outputs = net(images)
                    _, predicted = torch.max(outputs, 1)
                    correct += (outputs == labels).sum().item()
            """,
            line=7, column=21,
            fixed="""
            import torch
            correct = 0
            with torch.no_grad():
                for images, labels in test_loader:
                    outputs = net(images)
                    _, predicted = torch.max(outputs, 1)
                    correct += (outputs.argmax(dim=1) == labels).sum().item()
            """,
        ),
        # trained with cross-entropy
        Invalid(
            """
            import torch
            import torch.nn as nn
            criterion = nn.CrossEntropyLoss()
            def train(model, loader):
                for x, y in loader:
                    loss = criterion(model(x), y)
                    loss.backward()
            def test(model, loader):
                correct = 0
                for x, y in loader:
                    logits = model(x)
                    correct += logits.eq(y).sum().item()
                return correct
            """,
            line=12, column=20,
            fixed="""
            import torch
            import torch.nn as nn
            criterion = nn.CrossEntropyLoss()
            def train(model, loader):
                for x, y in loader:
                    loss = criterion(model(x), y)
                    loss.backward()
            def test(model, loader):
                correct = 0
                for x, y in loader:
                    logits = model(x)
                    correct += logits.argmax(dim=1).eq(y).sum().item()
                return correct
            """,
        ),
        # binary logits: explained, not fixed
        Invalid(
            """
            import torch
            import torch.nn as nn
            loss_fn = nn.BCEWithLogitsLoss()
            for x, y in train_loader:
                out = model(x).squeeze()
                loss_fn(out, y).backward()
            for x, y in val_loader:
                out = model(x).squeeze()
                acc = (out == y).float().mean()
            """,
            line=9, column=12,
        ),
    ]


def _has_numpy(expr) -> bool:
    return any(isinstance(n, cst.Attribute) and n.attr.value == "numpy" for n in walk(expr))


def _base_is(expr, name: str) -> bool:
    while isinstance(expr, cst.Attribute) and expr.attr.value == "data":
        expr = expr.value
    return isinstance(expr, cst.Name) and expr.value == name


def _argmax(side):
    return cst.Call(func=cst.Attribute(side, cst.Name("argmax")),
                    args=[cst.Arg(keyword=cst.Name("dim"), value=cst.Integer("1"),
                                  equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                                        whitespace_after=cst.SimpleWhitespace("")))])
