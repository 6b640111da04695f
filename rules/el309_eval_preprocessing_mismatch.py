"""EL309 eval-preprocessing-mismatch."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import ModuleFacts
from evallint.rule import Finding, Invalid, Rule


class EvalPreprocessingMismatch(Rule):
    """
    ## What it does
    Flags evaluation data preprocessed differently from the training data: the
    training transform normalises (`Normalize(mean, std)`) and the evaluation
    transform, made only of known library transforms, does not, or normalises with
    other literal statistics; and `model.predict(X_test)` (or `score`, `evaluate`) on
    raw test arrays when the training arrays went through a scaler's `fit_transform`
    and no `transform` is ever applied to the test arrays. Augmentation differences
    (random crops and flips belong to training) and statistics shared by both sides
    are fine.

    ## Why it is wrong
    The model is scored on inputs from another distribution than the one it was
    trained on: pixel values in [0, 1] instead of standardised ones, unscaled features.
    The score drops for no reason the model is responsible for.

    ## Example
    ```python
    train_tf = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    test_tf = T.Compose([T.ToTensor()])
    ```

    ## Fix
    Apply the same deterministic preprocessing to both: the same `Normalize`, the
    fitted scaler's `transform` on the test arrays. No automatic fix.

    ## References
    - Framework-parity guides (PyTorch vs Keras results) list preprocessing
      consistency first.
    """

    code = "EL309"
    name = "eval-preprocessing-mismatch"
    summary = "The evaluation data is not normalised like the training data."
    severity = Severity.WARNING
    fixable = None
    tokens = (("Normalize", "fit_transform"),)

    def check(self, facts: ModuleFacts):
        yield from self._transforms(facts)
        for call, name, fit in facts.untransformed_predictions:
            yield Finding(call.args[0].value, f"`{name}` is passed raw, but the training data went through "
                                              f"`{fit.kind}`: apply the fitted `transform` to it first")

    def _transforms(self, facts: ModuleFacts):
        attached = facts.transform_attachments
        trains = [a for a in attached if a.role == "train"]
        if not trains or not all(a.transform.normalize for a in trains):
            return
        stats = {n for a in trains for n in a.transform.normalize}
        for a in attached:
            if a.role != "eval" or not a.transform.known:
                continue
            if not a.transform.normalize:
                yield Finding(a.transform.expr, "the training transform normalises and this evaluation transform "
                                                "does not: the model is scored on inputs it never saw")
            elif len(stats) == 1 and None not in stats and all(n is not None for n in a.transform.normalize) \
                    and set(a.transform.normalize) != stats:
                yield Finding(a.transform.expr, "the evaluation transform normalises with other statistics "
                                                "than the training transform")

    VALID = [
        # the same Normalize on both sides, augmentation only in training
        """
        import torchvision.transforms as T
        from torchvision.datasets import CIFAR10
        norm = T.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
        train_tf = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), norm])
        test_tf = T.Compose([T.ToTensor(), norm])
        train_set = CIFAR10("data", train=True, transform=train_tf)
        test_set = CIFAR10("data", train=False, transform=test_tf)
        """,
        # training statistics computed once, applied to both
        """
        import torchvision.transforms as T
        from torchvision.datasets import MNIST
        mean, std = compute_stats()
        train_set = MNIST("data", train=True, transform=T.Compose([T.ToTensor(), T.Normalize(mean, std)]))
        test_set = MNIST("data", train=False, transform=T.Compose([T.ToTensor(), T.Normalize(mean, std)]))
        """,
        # a custom evaluation transform may normalise itself: unknown, stay quiet
        """
        import torchvision.transforms as T
        from torchvision.datasets import MNIST
        train_set = MNIST("data", train=True, transform=T.Compose([T.ToTensor(), T.Normalize((0.13,), (0.31,))]))
        test_set = MNIST("data", train=False, transform=T.Compose([T.ToTensor(), Standardize()]))
        """,
        # the fitted scaler is applied to the test arrays
        """
        from sklearn.preprocessing import StandardScaler
        scaler = StandardScaler()
        X_train = scaler.fit_transform(X_train)
        X_test = scaler.transform(X_test)
        clf.fit(X_train, y_train)
        print(clf.score(X_test, y_test))
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torchvision.transforms as T
            from torchvision.datasets import CIFAR10
            train_tf = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
            test_tf = T.Compose([T.ToTensor()])
            train_set = CIFAR10("data", train=True, transform=train_tf)
            test_set = CIFAR10("data", train=False, transform=test_tf)
            """,
            line=6, column=51,
        ),
        Invalid(
            """
            from torchvision import datasets, transforms
            train_set = datasets.MNIST("data", train=True,
                                       transform=transforms.Compose([transforms.ToTensor(),
                                                                     transforms.Normalize((0.1307,), (0.3081,))]))
            test_set = datasets.MNIST("data", train=False,
                                      transform=transforms.Compose([transforms.ToTensor(),
                                                                    transforms.Normalize((0.5,), (0.5,))]))
            """,
            line=6, column=37,
        ),
        Invalid(
            """
            from sklearn.preprocessing import StandardScaler
            scaler = StandardScaler()
            X_train_scaled = scaler.fit_transform(X_train)
            clf.fit(X_train_scaled, y_train)
            print(clf.score(X_test, y_test))
            """,
            line=5, column=17,
        ),
    ]
