"""EL108 argmax-wrong-dim."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.accumulators import loop_loader
from evallint.facts.exprs import argument, keyword, method_call, number
from evallint.facts.predictions import is_label
from evallint.facts.walk import own_expressions
from evallint.rule import Change, Finding, Invalid, Rule


def _reduction(facts, call: cst.Call):
    """(output expr, dim: int | None | "unknown", kind) for `out.argmax(...)`,
    `torch.argmax(out, ...)`, `out.max(...)`, `torch.max(out, ...)`; else None."""
    mc = method_call(call)
    if mc is not None and mc[1] in ("argmax", "max") and facts.qualify(call.func) not in ("torch.argmax", "torch.max"):
        out, kind, dim_expr = mc[0], mc[1], argument(call, 0, "dim")
    elif facts.qualify(call.func) in ("torch.argmax", "torch.max") and call.args and call.args[0].keyword is None:
        out, kind, dim_expr = call.args[0].value, facts.qualify(call.func).split(".")[1], argument(call, 1, "dim")
    else:
        return None
    if any(a.star for a in call.args) or keyword(call, "axis") is not None:
        return None
    if dim_expr is None:
        return out, None, kind
    d = number(dim_expr)
    return out, (int(d) if d is not None else "unknown"), kind


def _compared_label(facts, expr_or_name, stmt, loop) -> bool:
    """Is the prediction compared with the batch's labels (`==`, `.eq`) in the loop?"""
    for s in facts.index.statements[loop.stmt.order + 1: loop.stmt.end_order + 1]:
        if s.order < stmt.order:
            continue
        for node in _nodes(s):
            if isinstance(node, cst.Comparison) and len(node.comparisons) == 1 \
                    and isinstance(node.comparisons[0].operator, cst.Equal):
                a, b = node.left, node.comparisons[0].comparator
                if _is(expr_or_name, a) and is_label(facts, b, loop) or _is(expr_or_name, b) and is_label(facts, a, loop):
                    return True
            if isinstance(node, cst.Call):
                mc = method_call(node)
                if mc is not None and mc[1] == "eq" and node.args and _is(expr_or_name, mc[0]) \
                        and is_label(facts, node.args[0].value, loop):
                    return True
    return False


def _nodes(stmt):
    return own_expressions(stmt.node)


def _is(target, node) -> bool:
    for _ in range(4):
        if getattr(node, "lpar", None):
            node = node.with_changes(lpar=(), rpar=())
        mc = method_call(node)
        if mc is not None and mc[1] in ("view_as", "view", "squeeze", "cpu", "long", "flatten"):
            node = mc[0]
            continue
        break
    if isinstance(target, str):
        return isinstance(node, cst.Name) and node.value == target
    return node is target or (isinstance(node, cst.Call) and node.deep_equals(target))


class ArgmaxWrongDim(Rule):
    """
    ## What it does
    Flags the predicted class taken over the wrong axis of a model's (N, C) output and
    compared with the batch's labels: `out.argmax()` with no `dim`, `out.argmax(dim=0)`,
    `torch.max(out, 0)`.

    ## Why it is wrong
    Without `dim`, argmax flattens the batch and returns one index into N × C numbers;
    with `dim=0` it returns, for every class, the sample with the highest score. Either
    way the "predictions" are not one class per sample, and comparing them with the
    labels (by broadcasting) gives a meaningless accuracy.

    ## Example
    ```python
    for x, y in test_loader:
        pred = model(x).argmax()
        correct += (pred == y).sum().item()
    ```

    ## Fix
    Take the class axis: `model(x).argmax(dim=1)`. The fix is safe for the no-`dim`
    case when the result is compared with a label vector; `dim=0` is explained only
    (some models put the batch second). A loader with batch size 1 makes `argmax()`
    right, and is not flagged.

    ## References
    - PyTorch documentation: `torch.argmax(input, dim=None)`: "the indices of the
      maximum value of all elements" when `dim` is not given.
    """

    code = "EL108"
    name = "argmax-wrong-dim"
    summary = "argmax/max over the batch axis (or the flattened output) compared with labels."
    severity = Severity.ERROR
    fixable = Applicability.SAFE
    tokens = (("argmax", "max("), TORCH_TOKENS)
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for call, stmt in facts.index.calls:
            found = _reduction(facts, call)
            if found is None:
                continue
            out, dim, kind = found
            if dim not in (None, 0) or (kind == "max" and dim is None):
                continue  # `out.max()` is the largest score, not a prediction
            loops = [l for l in facts.enclosing_loops(stmt) if facts.is_batch_loop(l)]
            if not loops or facts.model_output(out, stmt) is None:
                continue
            loop = loops[0]
            is_loader, info = loop_loader(facts, loop)
            if not is_loader or (info is not None and info.batch_size == 1):
                continue  # a loop over arrays or a dataset yields single samples
            if not _compared_label(facts, self._prediction(call, stmt, kind), stmt, loop):
                continue
            if dim is None:
                yield Finding(call, "argmax without `dim` flattens the batch: it returns one index, not a class per "
                                    "sample; use `argmax(dim=1)`", self._add_dim(call))
            else:
                yield Finding(call, f"`{kind}` over dim 0 picks a sample per class, not a class per sample; the "
                                    "classes are on dim 1 of an (N, C) output")

    @staticmethod
    def _prediction(call, stmt, kind):
        """What holds the predicted classes: the call, or the name it is bound to."""
        node = stmt.node
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            target = node.targets[0].target
            if node.value is call and isinstance(target, cst.Name):
                return target.value
            if kind == "max" and node.value is call and isinstance(target, cst.Tuple) and len(target.elements) == 2 \
                    and isinstance(target.elements[1].value, cst.Name):
                return target.elements[1].value.value
            if isinstance(node.value, cst.Call) and isinstance(target, cst.Name):
                mc = method_call(node.value)  # pred = out.argmax().item() is still one index
                if mc is not None and mc[0] is call:
                    return target.value
        return call

    def _add_dim(self, call: cst.Call):
        dim = cst.Arg(keyword=cst.Name("dim"), value=cst.Integer("1"),
                      equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                            whitespace_after=cst.SimpleWhitespace("")))
        args = list(call.args)
        if args:
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        return self.fix(Applicability.SAFE, "Take the argmax over the class axis, `dim=1`",
                        Change(call, call.with_changes(args=[*args, dim])))

    VALID = [
        """
        import torch
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                pred = model(x).argmax(dim=1)
                correct += (pred == y).sum().item()
        """,
        # single-sample prediction: argmax of a (1, C) output is the class
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(test_set)
        correct = 0
        for x, y in loader:
            correct += int(model(x).argmax() == y)
        """,
        # the largest score, not a class
        """
        import torch
        for x, y in val_loader:
            out = model(x)
            confidence = out.max()
            _, predicted = torch.max(out, 1)
            correct += (predicted == y).sum().item()
        """,
        # a loop over single samples: dim 0 is the class axis
        """
        import torch
        for i, (inputs, labels) in enumerate(zip(X_test, y_test)):
            outputs = net(torch.Tensor(inputs))
            _, predicted = torch.max(outputs.data, 0)
            correct += int(predicted == labels)
        """,
        # argmax over an unbatched output outside a batch loop
        """
        import torch
        logits = model(image.unsqueeze(0))
        label = logits.argmax()
        print(classes[label] == expected)
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            correct = 0
            with torch.no_grad():
                for x, y in test_loader:
                    pred = model(x).argmax()
                    correct += (pred == y).sum().item()
            """,
            line=5, column=16,
            fixed="""
            import torch
            correct = 0
            with torch.no_grad():
                for x, y in test_loader:
                    pred = model(x).argmax(dim=1)
                    correct += (pred == y).sum().item()
            """,
        ),
        # compared in a loop header
        Invalid(
            """
            import torch
            accuracy = 0
            for i, (images, labels) in enumerate(val_loader):
                outputs = model(images)
                for hit in torch.argmax(outputs) == labels:
                    if hit:
                        accuracy += 1
            """,
            line=5, column=16,
            fixed="""
            import torch
            accuracy = 0
            for i, (images, labels) in enumerate(val_loader):
                outputs = model(images)
                for hit in torch.argmax(outputs, dim=1) == labels:
                    if hit:
                        accuracy += 1
            """,
        ),
        # torch.max over dim 0: explained
        Invalid(
            """
            import torch
            for images, labels in val_loader:
                outputs = net(images)
                _, predicted = torch.max(outputs, 0)
                correct += (predicted == labels).sum().item()
            """,
            line=4, column=20,
        ),
        Invalid(
            """
            import torch
            for i, (x, y) in enumerate(test_loader):
                logits = model(x)
                acc = (torch.argmax(logits, dim=0) == y).float().mean()
            """,
            line=4, column=12,
        ),
    ]
