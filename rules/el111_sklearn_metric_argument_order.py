"""EL111 sklearn-metric-argument-order."""
from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ModuleFacts
from evallint.facts.exprs import dotted, keyword, last_part, literal_value, method_call, number
from evallint.facts.patterns import snake
from evallint.rule import Change, Finding, Invalid, Rule

_METRICS = "sklearn.metrics."
# Metrics whose value changes when y_true and y_pred trade places.
_ORDERED = {"precision_score", "recall_score", "balanced_accuracy_score", "confusion_matrix",
            "classification_report", "precision_recall_fscore_support", "fbeta_score", "f1_score"}
_PRED = re.compile(r"pred|y_?hat|guess")
_TRUE = re.compile(r"^ys?$|true|label|target|^gts?$|^gt_|_gts?$|ground|actual|^y_(?:test|val|valid|dev|eval|train)$"
                   r"|^(?:test|val|valid|dev|eval)_ys?$")
# Wrappers and conversions that keep which array it is.
_WRAPPERS = {"array", "asarray", "concatenate", "cat", "list", "vstack", "hstack", "stack", "tensor", "ravel"}
_CONVERSIONS = {"cpu", "numpy", "detach", "tolist", "ravel", "flatten", "squeeze", "astype", "int", "long",
                "view", "reshape", "to"}
_PREDICTING = {"predict", "argmax", "round"}


def role(expr: cst.BaseExpression, qualify) -> Optional[str]:
    """"pred" for predictions, "true" for ground truth, None when the name does not say."""
    for _ in range(8):
        mc = method_call(expr)
        if mc is not None and mc[1] in _PREDICTING:
            return "pred"
        if mc is not None and mc[1] in _CONVERSIONS:
            expr = mc[0]
            continue
        if isinstance(expr, cst.Call) and last_part(qualify(expr.func) or "") in _WRAPPERS and expr.args:
            expr = expr.args[0].value
            continue
        break
    name = dotted(expr)
    if name is None:
        return None
    n = snake(last_part(name))
    if _PRED.search(n):
        return "pred"
    if _TRUE.search(n):
        return "true"
    return None


def order_matters(short: str, call: cst.Call) -> bool:
    average = keyword(call, "average")
    avg = literal_value(average.value) if average is not None else "binary"
    if short == "f1_score":
        return avg == "weighted"
    if short == "fbeta_score":
        beta = keyword(call, "beta")
        b = number(beta.value) if beta is not None else None
        if b is None and beta is None and len([a for a in call.args if a.keyword is None]) >= 3:
            b = number(call.args[2].value)
        return (b is not None and b != 1) and avg not in ("micro",) or avg == "weighted"
    if short in ("precision_score", "recall_score", "precision_recall_fscore_support"):
        return avg != "micro"  # micro precision = micro recall = accuracy for single-label data
    return True


class SklearnMetricArgumentOrder(Rule):
    """
    ## What it does
    Flags a scikit-learn metric called with the predictions first and the ground truth
    second, judged by the argument names: `precision_score(y_pred, y_true)`,
    `confusion_matrix(preds, labels)`. Only where the order changes the value:
    precision, recall, F-beta with β ≠ 1, `average="weighted"`, balanced accuracy,
    the confusion matrix and the classification report.

    ## Why it is wrong
    scikit-learn's metrics take `(y_true, y_pred)`. Swapped, precision and recall trade
    places, the confusion matrix is transposed and weighted averages use the
    predictions' class counts: numbers that look fine and are wrong. Accuracy and
    binary or macro F1 are symmetric, so the rule stays silent there.

    ## Example
    ```python
    precision = precision_score(y_pred, y_true)
    ```

    ## Fix
    Swap the arguments: `precision_score(y_true, y_pred)`. Safe: the rule fires only
    when both names are unambiguous.

    ## References
    - scikit-learn documentation: `sklearn.metrics.precision_score(y_true, y_pred, ...)`.
    """

    code = "EL111"
    name = "sklearn-metric-argument-order"
    summary = "An sklearn metric gets `(y_pred, y_true)`; precision/recall swap, the matrix transposes."
    severity = Severity.ERROR
    fixable = Applicability.SAFE
    tokens = ("sklearn",)

    def check(self, facts: ModuleFacts):
        if "sklearn" not in facts.frameworks:
            return
        for call, stmt in facts.index.calls:
            name = facts.qualify(call.func) or ""
            if not name.startswith(_METRICS) or name[len(_METRICS):] not in _ORDERED:
                continue
            short = name[len(_METRICS):]
            pair = self._true_and_pred(call)
            if pair is None or not order_matters(short, call):
                continue
            first, second = pair
            if role(first.value, facts.qualify) != "pred" or role(second.value, facts.qualify) != "true":
                continue
            new_first = first.with_changes(value=second.value)
            new_second = second.with_changes(value=first.value)
            fixed = call.with_changes(args=[new_first if a is first else new_second if a is second else a
                                            for a in call.args])
            yield Finding(call, f"`{short}` takes `(y_true, y_pred)`; the predictions are passed as the "
                                f"ground truth here, which changes the value",
                          self.fix(Applicability.SAFE, "Swap the ground truth and the predictions",
                                   Change(call, fixed)))

    @staticmethod
    def _true_and_pred(call: cst.Call):
        """(the arg in the y_true slot, the arg in the y_pred slot)."""
        if any(a.star for a in call.args):
            return None
        t, p = keyword(call, "y_true"), keyword(call, "y_pred")
        positional = [a for a in call.args if a.keyword is None]
        if t is None:
            t = positional[0] if positional else None
            positional = positional[1:]
        if p is None:
            p = positional[0] if positional else None
        return (t, p) if t is not None and p is not None else None

    VALID = [
        """
        from sklearn.metrics import precision_score, recall_score
        precision = precision_score(y_true, y_pred)
        recall = recall_score(labels, preds, average="macro")
        """,
        # symmetric metrics: the order does not change the value
        """
        from sklearn.metrics import accuracy_score, f1_score
        acc = accuracy_score(y_pred, y_true)
        f1 = f1_score(preds, labels)
        macro = f1_score(preds, labels, average="macro")
        """,
        # names that do not say which is which
        """
        from sklearn.metrics import confusion_matrix
        cm = confusion_matrix(a, b)
        """,
        # keywords in the right slots, in any order
        """
        from sklearn import metrics
        p = metrics.precision_score(y_pred=preds, y_true=targets)
        """,
        # torchmetrics takes (preds, target): not sklearn
        """
        from torchmetrics.functional import precision
        p = precision(preds, target, task="binary")
        """,
    ]
    INVALID = [
        Invalid(
            """
            from sklearn.metrics import precision_score
            precision = precision_score(y_pred, y_true)
            """,
            line=2, column=13,
            fixed="""
            from sklearn.metrics import precision_score
            precision = precision_score(y_true, y_pred)
            """,
        ),
        # a weighted F1 and a conversion chain
        Invalid(
            """
            from sklearn import metrics
            f1 = metrics.f1_score(all_preds.cpu().numpy(), all_labels.cpu().numpy(), average="weighted")
            """,
            line=2, column=6,
            fixed="""
            from sklearn import metrics
            f1 = metrics.f1_score(all_labels.cpu().numpy(), all_preds.cpu().numpy(), average="weighted")
            """,
        ),
        # keywords in swapped slots
        Invalid(
            """
            from sklearn.metrics import confusion_matrix
            cm = confusion_matrix(y_true=clf.predict(X_test), y_pred=y_test)
            """,
            line=2, column=6,
            fixed="""
            from sklearn.metrics import confusion_matrix
            cm = confusion_matrix(y_true=y_test, y_pred=clf.predict(X_test))
            """,
        ),
    ]
