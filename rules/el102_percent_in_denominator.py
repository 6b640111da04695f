"""EL102 percent-in-denominator."""
from __future__ import annotations

import re

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ML_TOKENS, ModuleFacts
from evallint.facts.exprs import number, unparenthesized
from evallint.facts.walk import walk
from evallint.rule import Change, Finding, Invalid, Rule

_COUNT_NAME = re.compile(r"correct|right|hit|match|tp\b|true|pos|acc|count|num|^n_|^n$|sum|score|agree", re.I)
_SIZE_NAME = re.compile(r"total|count|num|^n_|^n$|samples|size|len|length|examples|instances|batch", re.I)
_SIZE_CALLS = {"len", "size", "numel", "count"}


def _is_hundred(expr) -> bool:
    return number(expr) == 100.0


def _names(expr) -> list[str]:
    return [n.value for n in walk(expr) if isinstance(n, cst.Name)] + \
           [n.attr.value for n in walk(expr) if isinstance(n, cst.Attribute)]


def is_count(expr) -> bool:
    if number(expr) is not None:
        return False
    for node in walk(expr):
        if isinstance(node, cst.Comparison):
            return True
        if isinstance(node, cst.Call):
            f = node.func
            name = f.attr.value if isinstance(f, cst.Attribute) else getattr(f, "value", "")
            if name in ("sum", "count_nonzero", "item", "count"):
                return True
    return any(_COUNT_NAME.search(n) for n in _names(expr))


def is_size(expr) -> bool:
    for node in walk(expr):
        if isinstance(node, cst.Call):
            f = node.func
            name = f.attr.value if isinstance(f, cst.Attribute) else getattr(f, "value", "")
            if name in _SIZE_CALLS:
                return True
        if isinstance(node, cst.Attribute) and node.attr.value == "shape":
            return True
    return any(_SIZE_NAME.search(n) for n in _names(expr))


class PercentInDenominator(Rule):
    """
    ## What it does
    Flags a ratio whose denominator multiplies the sample count by the literal 100,
    e.g. `correct / (len(y) * 100)`.

    ## Why it is wrong
    The percentage went into the denominator: the result is the fraction divided by
    100 instead of multiplied by it, off by a factor of 10,000. A 90% accuracy prints
    as 0.009.

    ## Example
    ```python
    accuracy = torch.sum(predictions_binary == test_Y) / (len(test_Y) * 100)
    ```

    ## Fix
    Divide first, then scale: `torch.sum(predictions_binary == test_Y) / len(test_Y) * 100`.
    The fix is unsafe: the author may have meant a fraction (drop the 100 then).

    ## References
    - Seen in student and tutorial binary-classification scripts; the same shape
      appears with `(total * 100)`.
    """

    code = "EL102"
    name = "percent-in-denominator"
    summary = "`count / (n * 100)`: the percentage went into the denominator (off by 10⁴)."
    severity = Severity.ERROR
    fixable = Applicability.UNSAFE
    tokens = (("100",), ML_TOKENS)
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_ml:
            return
        for binop, _stmt in facts.index.binops:
            if not isinstance(binop.operator, cst.Divide):
                continue
            right = binop.right
            if not (isinstance(right, cst.BinaryOperation) and isinstance(right.operator, cst.Multiply)):
                continue
            if _is_hundred(right.right):
                other = right.left
            elif _is_hundred(right.left):
                other = right.right
            else:
                continue
            if not right.lpar or not is_count(binop.left) or not is_size(other):
                continue
            yield Finding(binop, "The percentage is in the denominator: this divides by 100 instead of "
                                 "multiplying, off by 10,000; write `count / n * 100`", self._fix(binop, other))

    def _fix(self, binop: cst.BinaryOperation, other: cst.BaseExpression):
        if isinstance(other, cst.BinaryOperation) and not other.lpar:
            other = other.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        ratio = cst.BinaryOperation(left=binop.left, operator=binop.operator, right=unparenthesized(other)
                                    if not isinstance(other, cst.BinaryOperation) else other)
        fixed = cst.BinaryOperation(left=ratio, operator=cst.Multiply(), right=cst.Integer("100"),
                                    lpar=binop.lpar, rpar=binop.rpar)
        return self.fix(Applicability.UNSAFE, "Divide by the count, then multiply by 100", Change(binop, fixed))

    VALID = [
        "import torch\naccuracy = correct / len(y) * 100\n",
        "import torch\naccuracy = 100 * correct / total\n",
        # multi-label: divide by samples times classes, no literal 100
        "import torch\nacc = (pred == y).sum() / (len(y) * n_classes)\n",
        # converting units, not a count
        "import numpy as np\nseconds = elapsed_ms / (1000 * 100)\n",
        # percentage of a percentage scale, unrelated names
        "import numpy as np\nscale = width / (height * 100)\n",
    ]
    INVALID = [
        Invalid(
            """
            import torch
            predictions_binary = (torch.sigmoid(model(test_X)) > 0.5).float()
            accuracy = torch.sum(predictions_binary == test_Y) / (len(test_Y) * 100)
            print(f"accuracy: {accuracy:.2f}%")
            """,
            line=3, column=12,
            fixed="""
            import torch
            predictions_binary = (torch.sigmoid(model(test_X)) > 0.5).float()
            accuracy = torch.sum(predictions_binary == test_Y) / len(test_Y) * 100
            print(f"accuracy: {accuracy:.2f}%")
            """,
        ),
        Invalid(
            """
            import numpy as np
            acc = n_correct / (100 * total)
            """,
            line=2, column=7,
            fixed="""
            import numpy as np
            acc = n_correct / total * 100
            """,
        ),
    ]
