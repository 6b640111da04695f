"""EL305 preprocessing-fit-on-test."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import ModuleFacts
from evallint.rule import Finding, Invalid, Rule

_WHY = {
    "eval": "is fitted on the evaluation data",
    "all": "is fitted on training and evaluation data together",
    "before-split": "is fitted on all the data before `train_test_split`",
}


class PreprocessingFitOnTest(Rule):
    """
    ## What it does
    Flags preprocessing whose statistics are learned from data the model is scored on:
    `fit`, `fit_transform`, `partial_fit` or `fit_resample` of a scaler, PCA, imputer,
    feature selector, TF-IDF vectoriser or SMOTE-like resampler called on test or
    validation data (`X_test`), on train and test concatenated, or on the whole data
    set before `train_test_split`; and column statistics (`(X - X.mean()) / X.std()`)
    taken over the rows of such data. Fitting on the training split and applying the
    fitted object to both splits is correct and stays silent; so does a `Pipeline`.

    ## Why it is wrong
    The means, variances, components, imputed values or synthetic samples now carry
    information about the test rows. The test score is optimistic, and a resampler
    run before the split puts near-copies of training rows into the test set.

    ## Example
    ```python
    X = StandardScaler().fit_transform(X)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)
    ```

    ## Fix
    Split first, fit on the training split only, and `transform` the others:
    `scaler.fit(X_train)`, then `scaler.transform(X_train)` and
    `scaler.transform(X_test)` (or put the steps in a `Pipeline`). No automatic fix.

    ## References
    - scikit-learn user guide, "Common pitfalls: data leakage".
    """

    code = "EL305"
    name = "preprocessing-fit-on-test"
    summary = "A scaler/normaliser is fitted on the test data or on all data before the split."
    severity = Severity.WARNING
    fixable = None
    tokens = (("fit", "mean", "min", "std", "var", "median", "max"), ("sklearn", "numpy", "pandas", "imblearn", "torch"))

    def check(self, facts: ModuleFacts):
        if not facts.uses_ml and "pandas" not in {v.split(".")[0] for v in facts.aliases.values()}:
            return
        for fit, why in facts.leaky_fits:
            what = "column statistics" if fit.kind == "column statistics" else f"`{fit.kind}`"
            yield Finding(fit.call, f"{what} {_WHY[why]}: the test score sees statistics of the test rows; "
                                    "fit on the training split and transform the others")

    VALID = [
        # split first, fit on the training split, apply to both
        """
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)
        scaler = StandardScaler()
        X_train = scaler.fit_transform(X_train)
        X_test = scaler.transform(X_test)
        """,
        # a pipeline fits inside cross-validation
        """
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.linear_model import LogisticRegression
        model = make_pipeline(StandardScaler(), LogisticRegression())
        model.fit(X_train, y_train)
        """,
        # training statistics applied to the test set
        """
        import pandas as pd
        mean, std = X_train.mean(), X_train.std()
        X_train = (X_train - mean) / std
        X_test = (X_test - mean) / std
        """,
        # per-sample normalisation is not a statistic of the data set
        """
        import torch
        x_test = (x_test - x_test.mean(dim=1, keepdim=True)) / x_test.std(dim=1, keepdim=True)
        """,
        # a label encoder fitted on all labels leaks nothing
        """
        from sklearn.preprocessing import LabelEncoder
        from sklearn.model_selection import train_test_split
        y = LabelEncoder().fit_transform(y)
        X_train, X_test, y_train, y_test = train_test_split(X, y)
        """,
    ]
    INVALID = [
        Invalid(
            """
            from sklearn.model_selection import train_test_split
            from sklearn.preprocessing import StandardScaler
            X = StandardScaler().fit_transform(X)
            X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)
            """,
            line=3, column=5,
        ),
        Invalid(
            """
            from sklearn.preprocessing import MinMaxScaler
            scaler = MinMaxScaler()
            X_train = scaler.fit_transform(X_train)
            X_test = scaler.fit_transform(X_test)
            """,
            line=4, column=10,
        ),
        Invalid(
            """
            import pandas as pd
            from sklearn.model_selection import train_test_split
            df = pd.read_csv("data.csv")
            df = (df - df.mean()) / df.std()
            train_df, test_df = train_test_split(df, test_size=0.25)
            """,
            line=4, column=12,
        ),
        Invalid(
            """
            from imblearn.over_sampling import SMOTE
            from sklearn.model_selection import train_test_split
            X_res, y_res = SMOTE().fit_resample(X, y)
            X_train, X_test, y_train, y_test = train_test_split(X_res, y_res)
            """,
            line=3, column=16,
        ),
    ]
