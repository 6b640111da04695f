"""EL304 model-selection-on-test."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import ML_TOKENS, ModuleFacts
from evallint.rule import Finding, Invalid, Rule

_WHAT = {
    "checkpoint": "picks the saved best checkpoint",
    "early-stopping": "decides early stopping",
    "scheduler": "schedules the learning rate",
    "keras-callbacks": "drives the EarlyStopping/ModelCheckpoint/ReduceLROnPlateau callbacks",
}


class ModelSelectionOnTest(Rule):
    """
    ## What it does
    Flags a metric computed on the test data (a test loader or `X_test`-like arrays,
    followed through the call or the loop that computed it) that picks the best
    checkpoint (`if test_acc > best_acc: torch.save(...)`), decides early stopping
    (a patience counter, `break`, an `EarlyStopping` object), steps a scheduler
    (`scheduler.step(test_loss)`), or drives Keras callbacks through
    `validation_data=(X_test, y_test)`. A metric computed on a validation split is
    fine, whatever it is called.

    ## Why it is wrong
    Choosing the epoch, the learning-rate schedule or the stopping point by the test
    score fits the model to the test set. The reported test score is then the best of
    many looks at it: optimistic, and not an estimate of performance on new data.

    ## Example
    ```python
    test_acc = evaluate(model, test_loader)
    if test_acc > best_acc:
        best_acc = test_acc
        torch.save(model.state_dict(), "best.pt")
    ```

    ## Fix
    Carve a validation split from the training data (`random_split`,
    `train_test_split`), select on it, and score the test set once at the end. No
    automatic fix.

    ## References
    - Standard guidance on held-out test sets (a test set used for selection becomes a
      validation set).
    """

    code = "EL304"
    name = "model-selection-on-test"
    summary = "Checkpointing, early stopping or LR scheduling is driven by a test-set metric."
    severity = Severity.WARNING
    fixable = None
    tokens = (("test", "Test", "TEST", "holdout"), ML_TOKENS)

    def check(self, facts: ModuleFacts):
        if not facts.uses_ml:
            return
        for s in facts.selections:
            if s.data != "test":
                continue
            yield Finding(s.node, f"`{s.metric}` is computed on the test data and {_WHAT[s.kind]}: "
                                  "the test score is no longer an unbiased estimate; select on a validation split")

    VALID = [
        # a validation split drives selection, the test set is scored once at the end
        """
        import torch
        for epoch in range(20):
            train_one_epoch(model, train_loader)
            val_acc = evaluate(model, val_loader)
            if val_acc > best_acc:
                best_acc = val_acc
                torch.save(model.state_dict(), "best.pt")
        model.load_state_dict(torch.load("best.pt"))
        test_acc = evaluate(model, test_loader)
        print(test_acc)
        """,
        # tracking the best test score for a printout selects nothing
        """
        import torch
        for epoch in range(20):
            test_acc = evaluate(model, test_loader)
            if test_acc > best_acc:
                best_acc = test_acc
        print(best_acc)
        """,
        # the scheduler steps on the validation loss
        """
        import torch
        for epoch in range(20):
            val_loss = evaluate(model, valid_loader)
            scheduler.step(val_loss)
        """,
        # Keras: a validation split, the test arrays only for evaluate()
        """
        from tensorflow import keras
        stop = keras.callbacks.EarlyStopping(patience=3)
        model.fit(X_train, y_train, validation_data=(X_val, y_val), callbacks=[stop])
        model.evaluate(X_test, y_test)
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            for epoch in range(20):
                train_one_epoch(model, train_loader)
                acc = evaluate(model, test_loader)
                if acc > best_acc:
                    best_acc = acc
                    torch.save(model.state_dict(), "best.pt")
            """,
            line=5, column=8,
        ),
        Invalid(
            """
            import torch
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min")
            for epoch in range(20):
                test_loss = 0.0
                for x, y in test_loader:
                    test_loss += criterion(model(x), y).item()
                scheduler.step(test_loss)
            """,
            line=7, column=20,
        ),
        Invalid(
            """
            from tensorflow import keras
            from sklearn.model_selection import train_test_split
            X_train, X_test, y_train, y_test = train_test_split(X, y)
            stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3)
            model.fit(X_train, y_train, validation_data=(X_test, y_test), callbacks=[stop])
            """,
            line=5, column=45,
        ),
        Invalid(
            """
            import torch
            patience = 0
            for epoch in range(100):
                val_loss = validate(model, test_loader)
                if val_loss < best_loss:
                    best_loss = val_loss
                    patience = 0
                else:
                    patience += 1
                    if patience > 5:
                        break
            """,
            line=5, column=8,
        ),
    ]
