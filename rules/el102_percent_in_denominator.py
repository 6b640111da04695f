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
_CORRECT_NAME = re.compile(r"correct|right|hit|match|tp\b|acc|agree", re.I)
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


def is_correct_count(expr) -> bool:
    """A count of right answers (`(pred == y).sum()`, `correct`), not an error sum."""
    if any(isinstance(n, cst.Comparison) for n in walk(expr)):
        return True
    return any(_CORRECT_NAME.search(n) for n in _names(expr))


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


def _formatted_as_percent(statement: cst.CSTNode, binop: cst.BinaryOperation) -> bool:
    """Is the ratio shown through a `%` format spec (`f"{x:.2%}"`), which multiplies by 100?"""
    for node in walk(statement):
        if isinstance(node, cst.FormattedStringExpression) and node.expression is binop and node.format_spec:
            spec = "".join(getattr(part, "value", "") for part in node.format_spec)
            if spec.endswith("%"):
                return True
    return False


class PercentInDenominator(Rule):
    """
    ## What it does
    Flags a ratio whose denominator multiplies the sample count by the literal 100,
    e.g. `correct / (len(y) * 100)`, and a ratio of correct answers divided by 100
    again (`correct / total / 100`). Only sample counts: a number of batches
    (`len(loader) * 100`) is another bug, and a 100 that undoes a ×100 scaling of
    the labels is none, so both stay silent.

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
        for binop, stmt in facts.index.binops:
            if not isinstance(binop.operator, cst.Divide):
                continue
            finding = self._ratio_over_hundred(facts, binop)
            if finding is not None:
                yield finding
                continue
            right, wrapper = binop.right, None
            if isinstance(right, cst.Call) and isinstance(right.func, cst.Name) and right.func.value == "float" \
                    and len(right.args) == 1:
                wrapper, right = right, right.args[0].value  # float(total * 100)
            if not (isinstance(right, cst.BinaryOperation) and isinstance(right.operator, cst.Multiply)):
                continue
            if _is_hundred(right.right):
                other, hundred = right.left, right.right
            elif _is_hundred(right.left):
                other, hundred = right.right, right.left
            else:
                continue
            if not (right.lpar or wrapper) or not is_count(binop.left) or not is_size(other):
                continue
            if facts.is_batch_count(other):
                continue  # `/ (len(loader) * 100)`: a number of batches, not samples; not this bug
            if facts.labels_scaled_by_hundred and not is_correct_count(binop.left):
                continue  # the 100 may undo a ×100 scaling of the labels
            as_fraction = _formatted_as_percent(stmt.node, binop)
            yield Finding(binop, "The percentage is in the denominator: this divides by 100 instead of "
                                 "multiplying, off by 10,000; write `count / n * 100`"
                                 + (" (or `count / n`, since the `%` format already multiplies by 100)"
                                    if as_fraction else ""),
                          self._fix(binop, other, hundred, wrapper, as_fraction))

    def _ratio_over_hundred(self, facts, binop):
        """`correct / total / 100`: the ratio is divided by 100 instead of multiplied."""
        ratio = binop.left
        if not (_is_hundred(binop.right) and isinstance(ratio, cst.BinaryOperation)
                and isinstance(ratio.operator, cst.Divide)):
            return None
        if not is_correct_count(ratio.left) or not is_size(ratio.right) or facts.is_batch_count(ratio.right):
            return None  # `loss_sum / n / 100` may be a deliberate rescaling
        fixed = binop.with_changes(operator=cst.Multiply(whitespace_before=binop.operator.whitespace_before,
                                                         whitespace_after=binop.operator.whitespace_after))
        return Finding(binop, "The ratio is divided by 100 instead of multiplied, off by 10,000; "
                              "write `count / n * 100`",
                       self.fix(Applicability.UNSAFE, "Multiply the ratio by 100", Change(binop, fixed)))

    def _fix(self, binop, other, hundred, wrapper, as_fraction: bool):
        if isinstance(other, cst.BinaryOperation) and not other.lpar:
            other = other.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        if wrapper is not None:
            other = wrapper.with_changes(args=[wrapper.args[0].with_changes(value=unparenthesized(other))])
        elif not isinstance(other, cst.BinaryOperation):
            other = unparenthesized(other)
        ratio = cst.BinaryOperation(left=binop.left, operator=binop.operator, right=other)
        if as_fraction:
            return self.fix(Applicability.UNSAFE, "Divide by the count (the `%` format shows it as a percentage)",
                            Change(binop, ratio.with_changes(lpar=binop.lpar, rpar=binop.rpar)))
        fixed = cst.BinaryOperation(left=ratio, operator=cst.Multiply(), right=hundred.with_changes(lpar=(), rpar=()),
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
        # a number of batches times 100 is not a sample count: another bug, not this one
        "import torch\nacc = correct / (len(test_loader) * 100)\n",
        # the 100 undoes a x100 scaling of the labels
        """
        import torch
        y_train = y_train * 100
        y_test = y_test * 100
        mae = abs_error_sum / (n_samples * 100)
        """,
        # a loss sum rescaled after the division
        "import torch\nscaled = loss_sum / n / 100\n",
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
        # the `%` format already multiplies by 100: the fix keeps a fraction
        Invalid(
            """
            import torch
            print(f"accuracy {correct / (total * 100):.2%}")
            """,
            line=2, column=19,
            fixed="""
            import torch
            print(f"accuracy {correct / total:.2%}")
            """,
        ),
        # float() around the product; the literal is kept as written
        Invalid(
            """
            import torch
            acc = float(correct) / float(total * 100.0)
            """,
            line=2, column=7,
            fixed="""
            import torch
            acc = float(correct) / float(total) * 100.0
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
        # the ratio divided by 100 instead of multiplied
        Invalid(
            """
            import torch
            print("accuracy %", correct / total / 100)
            """,
            line=2, column=21,
            fixed="""
            import torch
            print("accuracy %", correct / total * 100)
            """,
        ),
    ]
