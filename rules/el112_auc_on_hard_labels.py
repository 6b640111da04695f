"""EL112 auc-on-hard-labels."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from evallint.diagnostic import Severity
from evallint.facts import ModuleFacts
from evallint.facts.exprs import dotted, keyword, last_part, method_call, number, value_assigned
from evallint.facts.flow import last_assignment_before, scope_statements
from evallint.rule import Finding, Invalid, Rule

_RANKING = {"sklearn.metrics.roc_auc_score", "sklearn.metrics.average_precision_score",
            "sklearn.metrics.roc_curve", "sklearn.metrics.precision_recall_curve"}
_WRAPPERS = {"array", "asarray", "concatenate", "cat", "list", "vstack", "hstack", "stack", "tensor", "ravel"}
_CONVERSIONS = {"cpu", "numpy", "detach", "tolist", "ravel", "flatten", "squeeze", "astype", "int", "long",
                "float", "view", "reshape", "to"}
_HARD_METHODS = {"argmax", "round"}
_HARD_FUNCS = {"torch.argmax", "numpy.argmax", "torch.round", "numpy.round", "numpy.rint"}
_ESTIMATOR_PREFIXES = ("sklearn.", "xgboost.", "lightgbm.", "catboost.", "flaml.")


def _factory_result(facts, call: cst.Call) -> Optional[cst.Call]:
    """`get_model()` of an in-file function that returns `LGBMClassifier(...)` (directly
    or through one local name) -> that constructor call."""
    name = dotted(call.func)
    functions = facts.functions.get(name or "", [])
    if len(functions) != 1 or functions[0].is_method:
        return None
    body = scope_statements(facts.index, facts.index.statements[functions[0].stmt.order + 1]) \
        if functions[0].stmt.end_order > functions[0].stmt.order else []
    returns = [s for s in body if isinstance(s.node, cst.Return) and s.node.value is not None]
    if len(returns) != 1:
        return None
    value = returns[0].node.value
    if isinstance(value, cst.Name):
        s = last_assignment_before(facts.index, value.value, returns[0])
        value = value_assigned(s.node, value.value) if s is not None else None
    return value if isinstance(value, cst.Call) else None


def _max_indices_target(facts, node, name) -> bool:
    """`_, name = torch.max(out, 1)` / `out.max(dim=1)`."""
    if not (isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.value, cst.Call)):
        return False
    target = node.targets[0].target
    if not (isinstance(target, cst.Tuple) and len(target.elements) == 2
            and isinstance(target.elements[1].value, cst.Name) and target.elements[1].value.value == name):
        return False
    mc = method_call(node.value)
    return (mc is not None and mc[1] == "max") or facts.qualify(node.value.func) == "torch.max"


class AucOnHardLabels(Rule):
    """
    ## What it does
    Flags a ranking metric (`roc_auc_score`, `average_precision_score`, `roc_curve`,
    `precision_recall_curve`) whose score argument is a hard label: `preds.argmax(1)`,
    a rounded or thresholded probability, or a scikit-learn classifier's `.predict(X)`.

    ## Why it is wrong
    AUC measures how well the scores rank positives above negatives. Class labels have
    two values, so the curve has a single corner: the result is the balanced accuracy
    of one threshold, not the AUC, and usually much lower.

    ## Example
    ```python
    auc = roc_auc_score(y_test, clf.predict(X_test))
    ```

    ## Fix
    Pass scores or probabilities: `clf.predict_proba(X_test)[:, 1]`,
    `torch.softmax(logits, 1)[:, 1]`. No automatic fix: which column and which
    function give the score depends on the model.

    ## References
    - scikit-learn documentation: `roc_auc_score(y_true, y_score)`: "Target scores ...
      probability estimates of the positive class, confidence values, or non-thresholded
      measure of decisions".
    """

    code = "EL112"
    name = "auc-on-hard-labels"
    summary = "AUC/average precision computed on predicted labels instead of scores."
    severity = Severity.ERROR
    fixable = None
    tokens = ("sklearn",)

    def check(self, facts: ModuleFacts):
        if "sklearn" not in facts.frameworks:
            return
        for call, stmt in facts.index.calls:
            name = facts.qualify(call.func) or ""
            if name not in _RANKING or any(a.star for a in call.args):
                continue
            score = keyword(call, "y_score") or keyword(call, "probas_pred")
            if score is None:
                positional = [a for a in call.args if a.keyword is None]
                if keyword(call, "y_true") is not None:
                    score = positional[0] if positional else None
                else:
                    score = positional[1] if len(positional) > 1 else None
            if score is None:
                continue
            how = self._hard(facts, score.value, stmt, 0)
            if how is not None:
                yield Finding(call, f"`{last_part(name)}` needs scores or probabilities, but gets hard "
                                    f"labels ({how}); the result is not the AUC")

    def _hard(self, facts, expr, at, depth) -> Optional[str]:
        for _ in range(8):
            if isinstance(expr, cst.Subscript) and isinstance(expr.value, cst.Call):
                mc = method_call(expr.value)  # torch.max(out, 1)[1] / out.max(1)[1]
                if (mc is not None and mc[1] == "max" or facts.qualify(expr.value.func) == "torch.max") \
                        and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index) \
                        and number(expr.slice[0].slice.value) == 1:
                    return "the indices of `max`"
            if isinstance(expr, cst.Attribute) and expr.attr.value == "indices":
                return "the indices of `max`"
            mc = method_call(expr)
            if mc is not None and mc[1] in _HARD_METHODS:
                return f"`.{mc[1]}()`"
            if mc is not None and mc[1] == "predict" and self._is_estimator(facts, mc[0], at):
                return "a classifier's `.predict()`"
            if isinstance(expr, cst.Call) and facts.qualify(expr.func) in _HARD_FUNCS:
                return f"`{last_part(facts.qualify(expr.func))}`"
            if isinstance(expr, cst.Comparison) and any(isinstance(c.operator, (cst.GreaterThan, cst.GreaterThanEqual,
                                                                                cst.LessThan, cst.LessThanEqual))
                                                        for c in expr.comparisons):
                return "a thresholded score"
            if mc is not None and mc[1] in _CONVERSIONS:
                expr = mc[0]
                continue
            if isinstance(expr, cst.Call) and last_part(facts.qualify(expr.func) or "") in _WRAPPERS and expr.args:
                expr = expr.args[0].value
                continue
            if getattr(expr, "lpar", None):
                expr = expr.with_changes(lpar=(), rpar=())
                continue
            break
        if isinstance(expr, cst.Name) and depth < 4:
            return self._hard_name(facts, expr.value, at, depth)
        return None

    def _hard_name(self, facts, name, at, depth) -> Optional[str]:
        """A name bound to hard labels, or a list every `append`/`extend` fills with them."""
        s = last_assignment_before(facts.index, name, at)
        value = value_assigned(s.node, name) if s is not None else None
        if value is None:
            return "the indices of `max`" if s is not None and _max_indices_target(facts, s.node, name) else None
        if isinstance(value, cst.List) and not value.elements:
            found = []
            for st in scope_statements(facts.index, at):
                if st.order >= at.order:
                    break
                for c in st.calls:
                    mc = method_call(c)
                    if mc is not None and mc[1] in ("append", "extend") and dotted(mc[0]) == name and c.args:
                        found.append(self._hard(facts, c.args[0].value, st, depth + 1))
            return found[0] if found and all(f is not None for f in found) else None
        return self._hard(facts, value, s, depth + 1)

    @staticmethod
    def _is_estimator(facts, obj, at) -> bool:
        """A scikit-learn (or xgboost/lightgbm/catboost) estimator, not a Keras model whose
        `predict` returns probabilities."""
        name = dotted(obj)
        if name is None:
            return False
        s = last_assignment_before(facts.index, name, at)
        value = value_assigned(s.node, name) if s is not None else None
        for _ in range(3):
            mc = method_call(value) if value is not None else None
            if mc is not None and mc[1] == "fit" and isinstance(mc[0], cst.Call):
                value = mc[0]  # clf = LogisticRegression().fit(X, y)
            else:
                break
        if not isinstance(value, cst.Call):
            return False
        value = _factory_result(facts, value) or value  # model = get_model()
        callee = facts.qualify(value.func) or ""
        if callee.startswith(("sklearn.calibration.CalibratedClassifierCV",)):
            return True
        return callee.startswith(_ESTIMATOR_PREFIXES) and not callee.startswith("sklearn.metrics")

    VALID = [
        # probabilities of the positive class
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        clf = LogisticRegression().fit(X_train, y_train)
        auc = roc_auc_score(y_test, clf.predict_proba(X_test)[:, 1])
        """,
        # a Keras model's predict returns probabilities
        """
        from sklearn.metrics import roc_auc_score
        from tensorflow import keras
        model = keras.Sequential([keras.layers.Dense(1, activation="sigmoid")])
        auc = roc_auc_score(y_test, model.predict(X_test))
        """,
        # scores collected batch by batch
        """
        import torch
        from sklearn.metrics import roc_auc_score
        scores = []
        for x, y in test_loader:
            scores.append(torch.softmax(model(x), dim=1)[:, 1])
        auc = roc_auc_score(labels, torch.cat(scores).numpy())
        """,
        # accuracy on hard labels is fine
        """
        from sklearn.metrics import accuracy_score
        acc = accuracy_score(y, preds.argmax(1))
        """,
    ]
    INVALID = [
        Invalid(
            """
            from sklearn.metrics import roc_auc_score
            auc = roc_auc_score(y, preds.argmax(1))
            """,
            line=2, column=7,
        ),
        Invalid(
            """
            from sklearn.ensemble import RandomForestClassifier
            from sklearn.metrics import roc_auc_score
            clf = RandomForestClassifier(n_estimators=100)
            clf.fit(X_train, y_train)
            print("AUC", roc_auc_score(y_test, clf.predict(X_test)))
            """,
            line=5, column=14,
        ),
        # the estimator comes from an in-file factory
        Invalid(
            """
            from lightgbm import LGBMClassifier
            from sklearn.metrics import roc_auc_score
            def get_model():
                classifier = LGBMClassifier(num_leaves=31)
                return classifier
            model = get_model()
            model.fit(X_train, y_train)
            y_pred = model.predict(X_test)
            print(roc_auc_score(y_test, y_pred))
            """,
            line=9, column=7,
        ),
        # hard labels collected in a list
        Invalid(
            """
            import torch
            from sklearn import metrics
            all_preds = []
            for x, y in test_loader:
                _, predicted = torch.max(model(x), 1)
                all_preds.extend(predicted.tolist())
            auc = metrics.roc_auc_score(all_labels, all_preds)
            """,
            line=7, column=7,
        ),
    ]
