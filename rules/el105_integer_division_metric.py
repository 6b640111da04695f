"""EL105 integer-division-metric."""
from __future__ import annotations

import re

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ML_TOKENS, ModuleFacts
from evallint.facts.accumulators import COUNT, SAMPLES, comparison_kind, is_sample_count, peel
from evallint.facts.exprs import dotted, keyword, last_part, literal_value, number
from evallint.rule import Change, Finding, Invalid, Rule

_COUNT_NAME = re.compile(r"(?:^|_)(?:n_?)?(?:correct|corrects|hits?|matches|tp|tps|true_pos|agree|agreements)"
                         r"(?:_|$)|^(?:num|n|total|running|epoch|test|val|train)_?correct", re.I)
_TOTAL_NAME = re.compile(r"(?:^|_)(?:total|totals|samples|examples|instances|seen|batch_size)(?:_|$)"
                         r"|^n_?(?:samples|total|examples|seen)|^total|^n$", re.I)
# What `len()` of counts samples: labels, predictions, a dataset (not a list of groups).
_SAMPLES_OF = re.compile(r"(?:^|_)(?:y|ys|labels?|targets?|data|dataset|ds|set|samples?|examples?|preds?|"
                         r"predictions?|outputs?|x|inputs?|images?)(?:_|$)|dataset$|set$", re.I)


def _name(expr) -> str:
    return last_part(dotted(peel(expr)) or "")


class IntegerDivisionMetric(Rule):
    """
    ## What it does
    Flags a ratio of a count to a total computed with floor division: `correct // total`,
    `torch.div(correct, total, rounding_mode="floor")`.

    ## Why it is wrong
    Floor division of a count by a larger total is 0 (or 1 when every prediction is
    right): the accuracy prints as 0 whatever the model does. With tensors the result is
    an integer tensor, so the mistake survives a later multiplication by 100.

    ## Example
    ```python
    accuracy = correct // total
    ```

    ## Fix
    Use true division: `correct / total`. The fix is safe. A deliberate integer percent,
    `100 * correct // total` (the official CIFAR-10 tutorial prints it), is not flagged.

    ## References
    - pytorch/tutorials#227
    """

    code = "EL105"
    name = "integer-division-metric"
    summary = "`correct // total`: floor division turns a ratio into 0."
    severity = Severity.ERROR
    fixable = Applicability.SAFE
    tokens = (("//", "rounding_mode"), ML_TOKENS)
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_ml:
            return
        counts, totals = self._accumulated(facts)
        for binop, stmt in facts.index.binops:
            if isinstance(binop.operator, cst.FloorDivide) and self._is_ratio(binop.left, binop.right, counts, totals):
                op = binop.operator
                fixed = binop.with_changes(operator=cst.Divide(whitespace_before=op.whitespace_before,
                                                               whitespace_after=op.whitespace_after))
                yield Finding(binop, self._message(binop.left, binop.right),
                              self.fix(Applicability.SAFE, "Use true division `/`", Change(binop, fixed)))
        for call, stmt in facts.index.calls:
            if facts.qualify(call.func) not in ("torch.div", "torch.divide") or len(call.args) < 2:
                continue
            mode = keyword(call, "rounding_mode")
            if mode is None or literal_value(mode.value) not in ("floor", "trunc"):
                continue
            left, right = call.args[0].value, call.args[1].value
            if call.args[0].keyword is not None or call.args[1].keyword is not None \
                    or not self._is_ratio(left, right, counts, totals):
                continue
            args = [a for a in call.args if a is not mode]
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            yield Finding(call, self._message(left, right),
                          self.fix(Applicability.SAFE, "Drop `rounding_mode` (true division)",
                                   Change(call, call.with_changes(args=args))))

    @staticmethod
    def _message(left, right) -> str:
        return ("Floor division `//` of a count by a total is 0 unless every prediction is right; "
                "use `/` for the ratio")

    @staticmethod
    def _accumulated(facts):
        counts, totals = set(), set()
        for acc in facts.accumulators:
            kind = acc.value.kind
            if kind == COUNT:
                counts.add(acc.name)
            elif kind == SAMPLES:
                totals.add(acc.name)
        return counts, totals

    @staticmethod
    def _is_ratio(left, right, counts, totals) -> bool:
        if number(right) is not None or number(left) is not None:
            return False
        inner = peel(left)
        if isinstance(inner, cst.BinaryOperation):
            return False  # `100 * correct // total`: a deliberate integer percent
        is_count = _name(left) in counts or comparison_kind(inner) == COUNT or bool(_COUNT_NAME.search(_name(left)))
        if not is_count:
            return False
        inner_right = peel(right)
        if isinstance(inner_right, cst.Call) and isinstance(inner_right.func, cst.Name) \
                and inner_right.func.value == "len" and len(inner_right.args) == 1:
            of = dotted(inner_right.args[0].value) or ""
            return bool(_SAMPLES_OF.search(last_part(of))) or of.endswith(".dataset")
        return _name(right) in totals or is_sample_count(right) or bool(_TOTAL_NAME.search(_name(right)))

    VALID = [
        # the official CIFAR-10 tutorial: a deliberate integer percent
        """
        import torch
        correct = 0
        total = 0
        with torch.no_grad():
            for images, labels in testloader:
                _, predicted = torch.max(net(images), 1)
                total += labels.size(0)
                correct += (predicted == labels).sum().item()
        print(f"Accuracy of the network on the 10000 test images: {100 * correct // total} %")
        """,
        # true division
        """
        import torch
        accuracy = correct / total
        """,
        # integer arithmetic on sizes, not a metric
        """
        import torch
        n_batches = total // batch_size
        half = len(dataset) // 2
        """,
        # spreading a count over groups is integer arithmetic, not a ratio
        """
        import numpy as np
        correct_base = correct // len(kp_list)
        n_correct = n_correct // len(all_highway_exits)
        """,
        # floor division by a literal
        """
        import numpy as np
        pairs = n_correct // 2
        """,
        # torch.div without rounding, and with it on indices
        """
        import torch
        ratio = torch.div(correct, total)
        rows = torch.div(index, width, rounding_mode="floor")
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            correct = 0
            total = 0
            with torch.no_grad():
                for x, y in test_loader:
                    pred = model(x).argmax(dim=1)
                    correct += (pred == y).sum().item()
                    total += y.size(0)
            accuracy = correct // total
            print(f"accuracy {accuracy:.3f}")
            """,
            line=9, column=12,
            fixed="""
            import torch
            correct = 0
            total = 0
            with torch.no_grad():
                for x, y in test_loader:
                    pred = model(x).argmax(dim=1)
                    correct += (pred == y).sum().item()
                    total += y.size(0)
            accuracy = correct / total
            print(f"accuracy {accuracy:.3f}")
            """,
        ),
        # per batch, on a comparison
        Invalid(
            """
            import torch
            batch_acc = (out.argmax(1) == y).sum() // len(y)
            """,
            line=2, column=13,
            fixed="""
            import torch
            batch_acc = (out.argmax(1) == y).sum() / len(y)
            """,
        ),
        Invalid(
            """
            import torch
            acc = torch.div(num_correct, num_samples, rounding_mode="floor")
            """,
            line=2, column=7,
            fixed="""
            import torch
            acc = torch.div(num_correct, num_samples)
            """,
        ),
    ]
