"""EL403 implicit-macro-average."""
from __future__ import annotations

from evallint.diagnostic import Applicability, Severity
from evallint.facts import ModuleFacts
from evallint.facts.exprs import last_part
from evallint.facts.metrics import implicit_macro
from evallint.fixcalls import add_keyword
from evallint.rule import Change, Finding, Invalid, Rule


_SKLEARN = " and sklearn's accuracy_score"


def _wrapper_of(short: str) -> str:
    """`MulticlassF1Score` -> `F1Score(task="multiclass")`; functional names likewise."""
    for kind in ("Multiclass", "Multilabel", "multiclass_", "multilabel_"):
        if short.startswith(kind):
            task = kind.strip("_").lower()
            return f'{short[len(kind):]}(task="{task}")'
    return short


class ImplicitMacroAverage(Rule):
    """
    ## What it does
    Flags a torchmetrics `MulticlassAccuracy(num_classes=C)` (and the rest of the
    multiclass and multilabel stat-score family: precision, recall, F1, F-beta,
    specificity, Hamming distance, negative predictive value, as classes or as
    `torchmetrics.functional` calls) built without `average=`.

    ## Why it is wrong
    These classes average per class (`average="macro"`) by default, while the
    `Accuracy(task="multiclass")` wrapper, the pre-0.11 `Accuracy()` and sklearn's
    `accuracy_score` count correct samples (micro). The same predictions give two
    different "accuracies" depending on how the metric was built, and a macro average
    computed on a batch that holds only some of the classes is far from the epoch
    value. Whoever reads `val_acc` expects the fraction of correct predictions.

    ## Example
    ```python
    from torchmetrics.classification import MulticlassAccuracy
    self.acc = MulticlassAccuracy(num_classes=2)   # macro: mean of per-class recall
    ```

    ## Fix
    Say which average is meant. The fix writes today's behaviour out,
    `average="macro"` (safe: nothing changes but the reader's surprise); change it to
    `average="micro"` if the fraction of correct predictions is what you want.

    ## References
    - Lightning-AI/torchmetrics#2320 (inconsistent `average` defaults)
    - microsoft/hi-ml#671 (a project bitten by the macro default)
    """

    code = "EL403"
    name = "implicit-macro-average"
    summary = "`MulticlassAccuracy` & co. without `average=` average per class (macro), unlike `Accuracy(task=...)`."
    severity = Severity.WARNING
    fixable = Applicability.SAFE
    tokens = (("Multiclass", "Multilabel", "multiclass_", "multilabel_"), ("torchmetrics",))
    replay_probe = "average"

    def check(self, facts: ModuleFacts):
        if "torchmetrics" not in facts.frameworks:
            return
        for call, _ in facts.index.calls:
            qualified = facts.qualify(call.func) or ""
            if not qualified.startswith("torchmetrics."):
                continue
            short = last_part(qualified)
            if not implicit_macro(call, short):
                continue
            message = (f"`{short}` without `average=` averages per class (macro), unlike "
                       f"`{_wrapper_of(short)}` (micro){_SKLEARN if 'ccuracy' in short else ''}; "
                       f"make the average explicit")
            fix = self.fix(Applicability.SAFE, 'Write the default out: `average="macro"`',
                           Change(call, add_keyword(call, "average", '"macro"')))
            yield Finding(call, message, fix)

    VALID = [
        # explicit average
        """
        from torchmetrics.classification import MulticlassAccuracy
        acc = MulticlassAccuracy(num_classes=10, average="micro")
        """,
        # the task wrapper, micro by default
        """
        import torchmetrics
        acc = torchmetrics.Accuracy(task="multiclass", num_classes=10)
        f1 = torchmetrics.F1Score(task="multiclass", num_classes=10)
        """,
        # binary metrics have no per-class average
        """
        from torchmetrics.classification import BinaryAccuracy, BinaryF1Score
        acc, f1 = BinaryAccuracy(), BinaryF1Score()
        """,
        # average passed positionally (num_classes, top_k, average) or through **kwargs
        """
        from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
        acc = MulticlassAccuracy(10, 1, "micro")
        f1 = MulticlassF1Score(**metric_args)
        """,
        # functional with average
        """
        from torchmetrics.functional.classification import multiclass_accuracy
        value = multiclass_accuracy(preds, target, num_classes=3, average="weighted")
        """,
        # a class of the same name that is not torchmetrics'
        """
        import torch
        from mylib.metrics import MulticlassAccuracy
        acc = MulticlassAccuracy(num_classes=3)
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torchmetrics.classification import MulticlassAccuracy
            accuracy = MulticlassAccuracy(num_classes=2).to("cpu")
            """,
            line=3, column=12, message_contains="macro",
            fixed="""
            import torch
            from torchmetrics.classification import MulticlassAccuracy
            accuracy = MulticlassAccuracy(num_classes=2, average="macro").to("cpu")
            """,
        ),
        # any import path; a multi-line call keeps its layout
        Invalid(
            """
            import torchmetrics
            f1 = torchmetrics.classification.MulticlassF1Score(
                num_classes=5,
                ignore_index=-1,
            )
            """,
            line=2, column=6,
            fixed="""
            import torchmetrics
            f1 = torchmetrics.classification.MulticlassF1Score(
                num_classes=5,
                ignore_index=-1,
                average="macro",
            )
            """,
        ),
        # the functional interface has the same default
        Invalid(
            """
            import torchmetrics.functional as tmf
            acc = tmf.classification.multiclass_accuracy(logits, labels, 3)
            """,
            line=2, column=7,
            fixed="""
            import torchmetrics.functional as tmf
            acc = tmf.classification.multiclass_accuracy(logits, labels, 3, average="macro")
            """,
        ),
        Invalid(
            """
            from torchmetrics.classification import MultilabelRecall
            recall = MultilabelRecall(num_labels=4)
            """,
            line=2, column=10,
            fixed="""
            from torchmetrics.classification import MultilabelRecall
            recall = MultilabelRecall(num_labels=4, average="macro")
            """,
        ),
    ]
