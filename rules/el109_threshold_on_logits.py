"""EL109 threshold-on-logits."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.exprs import method_call, number
from evallint.facts.predictions import forward_applies
from evallint.facts.walk import walk
from evallint.rule import Change, Finding, Invalid, Rule

_SQUASHING = {"sigmoid", "softmax", "log_softmax", "Sigmoid", "Softmax", "LogSoftmax", "tanh", "hardsigmoid"}


class ThresholdOnLogits(Rule):
    """
    ## What it does
    Flags a 0.5 threshold (`out > 0.5`, `out >= 0.5`, `out.round()`,
    `torch.round(out)`) applied to the raw output of a model that is trained with
    `BCEWithLogitsLoss` (or `F.binary_cross_entropy_with_logits`), with no sigmoid in
    between.

    ## Why it is wrong
    `BCEWithLogitsLoss` applies the sigmoid itself, so the model's outputs are logits
    on the whole real line. A logit of 0.5 is a probability of 0.62: predictions with a
    probability between 0.5 and 0.62 are counted as negatives, and the accuracy, F1
    and confusion matrix are all shifted.

    ## Example
    ```python
    criterion = nn.BCEWithLogitsLoss()
    ...
    preds = (model(x) > 0.5).float()
    ```

    ## Fix
    Threshold the logit at 0 (`model(x) > 0`), which is the same as
    `torch.sigmoid(model(x)) > 0.5`; `out.round()` becomes `torch.sigmoid(out).round()`.
    Safe: the rule fires only when the loss proves the outputs are logits. A model
    whose own `forward` ends in a sigmoid, and `.round()` on sigmoid outputs, are not
    flagged.

    ## References
    - tensorflow/docs#1623
    """

    code = "EL109"
    name = "threshold-on-logits"
    summary = "A 0.5 threshold on the logits of a model trained with BCEWithLogitsLoss."
    severity = Severity.ERROR
    fixable = Applicability.SAFE
    tokens = (("WithLogits", "with_logits"), TORCH_TOKENS)
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch or not any(l.with_logits for l in facts.losses):
            return
        torch_name = next((k for k, v in facts.aliases.items() if v == "torch"), None)
        for comparison, stmt in self._comparisons(facts):
            side, literal = self._thresholded(comparison)
            if side is None or not self._logits(facts, side, stmt):
                continue
            yield Finding(comparison, "These are logits (the model is trained with BCEWithLogitsLoss): 0.5 is a "
                                      "probability threshold; compare the logits with 0 or apply a sigmoid first",
                          self.fix(Applicability.SAFE, "Threshold the logits at 0",
                                   Change(literal, cst.Integer("0", lpar=literal.lpar, rpar=literal.rpar))))
        for call, stmt in facts.index.calls:
            mc = method_call(call)
            if mc is not None and mc[1] == "round" and not call.args:
                side = mc[0]
                make = lambda s: call.with_changes(func=call.func.with_changes(value=_sigmoid(torch_name, s)))  # noqa: E731
            elif facts.qualify(call.func) == "torch.round" and len(call.args) == 1:
                side = call.args[0].value
                make = lambda s: call.with_changes(args=[call.args[0].with_changes(value=_sigmoid(torch_name, s))])  # noqa: E731
            else:
                continue
            if not self._logits(facts, side, stmt):
                continue
            fix = self.fix(Applicability.SAFE, "Apply the sigmoid before rounding", Change(call, make(side))) \
                if torch_name else None
            yield Finding(call, "Rounding logits (the model is trained with BCEWithLogitsLoss) thresholds them at "
                                "0.5, not at probability 0.5; apply `torch.sigmoid` first", fix)

    @staticmethod
    def _comparisons(facts):
        seen = set()
        for s in facts.statements:
            if isinstance(s.node, (cst.For, cst.While, cst.If, cst.With, cst.FunctionDef, cst.ClassDef, cst.Try)):
                continue
            for node in walk(s.node):
                if isinstance(node, cst.Comparison) and id(node) not in seen:
                    seen.add(id(node))
                    yield node, s

    @staticmethod
    def _thresholded(comparison: cst.Comparison):
        if len(comparison.comparisons) != 1:
            return None, None
        op = comparison.comparisons[0].operator
        right = comparison.comparisons[0].comparator
        if isinstance(op, (cst.GreaterThan, cst.GreaterThanEqual)) and number(right) == 0.5:
            return comparison.left, right
        if isinstance(op, (cst.LessThan, cst.LessThanEqual)) and number(comparison.left) == 0.5:
            return right, comparison.left
        return None, None

    @staticmethod
    def _logits(facts, expr, stmt) -> bool:
        out = facts.model_output(expr, stmt)
        if out is None or not out.bce_logits:
            return False
        return forward_applies(facts, out, stmt, _SQUASHING) is not True

    VALID = [
        # the sigmoid first
        """
        import torch
        import torch.nn as nn
        criterion = nn.BCEWithLogitsLoss()
        for x, y in train_loader:
            out = model(x)
            loss = criterion(out, y)
            loss.backward()
        with torch.no_grad():
            for x, y in test_loader:
                probs = torch.sigmoid(model(x))
                preds = (probs > 0.5).float()
                rounded = probs.round()
        """,
        # a model trained with BCELoss outputs probabilities
        """
        import torch
        import torch.nn as nn
        criterion = nn.BCELoss()
        for x, y in train_loader:
            out = model(x)
            loss = criterion(out, y)
            loss.backward()
        preds = model(x_test) > 0.5
        """,
        # thresholding logits at 0
        """
        import torch
        import torch.nn.functional as F
        for x, y in train_loader:
            logits = model(x).squeeze(1)
            loss = F.binary_cross_entropy_with_logits(logits, y)
            loss.backward()
        preds = model(x_test).squeeze(1) > 0
        """,
        # the model's forward ends in a sigmoid
        """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(10, 1)
            def forward(self, x):
                return torch.sigmoid(self.fc(x))
        model = Net()
        criterion = nn.BCEWithLogitsLoss()
        for x, y in train_loader:
            loss = criterion(model(x), y)
            loss.backward()
        preds = model(x_test) > 0.5
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn
            model = nn.Linear(20, 1)
            criterion = nn.BCEWithLogitsLoss()
            for x, y in train_loader:
                out = model(x).squeeze(1)
                loss = criterion(out, y.float())
                loss.backward()
            with torch.no_grad():
                for x, y in test_loader:
                    out = model(x).squeeze(1)
                    correct += ((out > 0.5).float() == y).sum().item()
            """,
            line=12, column=21,
            fixed="""
            import torch
            import torch.nn as nn
            model = nn.Linear(20, 1)
            criterion = nn.BCEWithLogitsLoss()
            for x, y in train_loader:
                out = model(x).squeeze(1)
                loss = criterion(out, y.float())
                loss.backward()
            with torch.no_grad():
                for x, y in test_loader:
                    out = model(x).squeeze(1)
                    correct += ((out > 0).float() == y).sum().item()
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            def train(model, loader):
                for x, y in loader:
                    loss = F.binary_cross_entropy_with_logits(model(x), y)
                    loss.backward()
            def evaluate(model, loader):
                for x, y in loader:
                    preds = model(x).round()
            """,
            line=9, column=17,
            fixed="""
            import torch
            import torch.nn.functional as F
            def train(model, loader):
                for x, y in loader:
                    loss = F.binary_cross_entropy_with_logits(model(x), y)
                    loss.backward()
            def evaluate(model, loader):
                for x, y in loader:
                    preds = torch.sigmoid(model(x)).round()
            """,
        ),
    ]


def _sigmoid(torch_name: str, expr):
    return cst.Call(func=cst.Attribute(cst.Name(torch_name), cst.Name("sigmoid")),
                    args=[cst.Arg(expr.with_changes(lpar=(), rpar=()) if getattr(expr, "lpar", None) else expr)])
