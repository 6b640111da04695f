"""EL603 broadcast-shape-mismatch."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import ModuleFacts
from evallint.rule import Finding, Invalid, Rule

# Losses that broadcast input and target instead of raising.
_BROADCASTING_LOSSES = {"MSELoss", "mse_loss", "L1Loss", "l1_loss", "SmoothL1Loss", "smooth_l1_loss",
                        "HuberLoss", "huber_loss"}


class BroadcastShapeMismatch(Rule):
    """
    ## What it does
    Flags a comparison (`==`, `!=`, `torch.eq`, `.eq`) or a regression loss
    (`MSELoss`, `L1Loss`, `SmoothL1Loss`, `HuberLoss`) between a value of shape
    `(N, 1)` and one of shape `(N,)`, where both shapes are known from the code: the
    output of a model whose last layer has one unit (`nn.Linear(k, 1)`, Keras
    `Dense(1)` through `predict`) and labels from a torchvision classification
    dataset, a `TensorDataset` of a vector, a Keras dataset, `.squeeze()` or
    `.view(-1)`.

    ## Why it is wrong
    Broadcasting turns `(N, 1) == (N,)` into an `N × N` matrix that compares every
    prediction with every label. `(preds == labels).sum()` then counts pairs, not
    samples: the "accuracy" can be 3,200% or 2.5% depending on how it is divided,
    and the same classifier that scores 86% in Keras's `evaluate` looks broken. An
    MSE loss over the `N × N` matrix trains every output towards the batch mean.

    ## Example
    ```python
    model = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 1))  # (N, 1)
    for x, y in test_loader:                                               # y: (N,)
        preds = (torch.sigmoid(model(x)) > 0.5).float()
        correct += (preds == y).sum().item()
    ```

    ## Fix
    Bring both to one shape: `model(x).squeeze(1)` (or `.view(-1)`), or compare with
    `y.unsqueeze(1)` / `y.view_as(preds)`. Not fixed automatically. Where shapes
    cannot be told statically evallint stays quiet; `evallint replay`'s shape guard
    catches the rest at run time.

    ## References
    - 935963004/LaBraM#15 (`(pred == targets)` with (64,) and (64, 1): a 64×64 comparison)
    - IntelLabs/matsciml#347 (MSELoss over `[N]` and `[N, 1]`)
    - dingmyu/CamNet#4
    """

    code = "EL603"
    name = "broadcast-shape-mismatch"
    summary = "(N, 1) outputs compared with (N,) labels broadcast to an N×N matrix."
    severity = Severity.ERROR
    tokens = (("Linear", "Dense", "unsqueeze"),
              ("==", "!=", "eq(", "MSELoss", "mse_loss", "L1Loss", "l1_loss", "HuberLoss", "huber_loss"))

    def check(self, facts: ModuleFacts):
        if not facts.uses_ml:
            return
        shapes = facts.shapes
        for left, right, node, stmt in shapes.comparisons():
            message = self._mismatch(facts, left, right, stmt, "the comparison")
            if message:
                yield Finding(node, message)
        for lc in facts.loss_calls:
            if lc.loss.short in _BROADCASTING_LOSSES and lc.input is not None and lc.target is not None:
                message = self._mismatch(facts, lc.input, lc.target, lc.stmt, f"`{lc.loss.short}`")
                if message:
                    yield Finding(lc.call, message)

    @staticmethod
    def _mismatch(facts, a, b, stmt, what):
        shapes = facts.shapes
        for col_expr, vec_expr in ((a, b), (b, a)):
            column = shapes.column(col_expr, stmt)
            if column is None:
                continue
            vector = shapes.vector(vec_expr, stmt)
            if vector is None:
                continue
            code = lambda n: " ".join(facts.module.code_for_node(n).split())  # noqa: E731
            return (f"`{code(col_expr)}` has shape (N, 1) (from {column}) and `{code(vec_expr)}` has shape (N,) "
                    f"({vector}): {what} broadcasts to an N×N matrix; use `.squeeze(1)` on the (N, 1) side")
        return None

    VALID = [
        # squeeze the single output before comparing
        """
        import torch
        import torch.nn as nn
        from torchvision import datasets
        from torch.utils.data import DataLoader
        test_loader = DataLoader(datasets.ImageFolder("data/test"), batch_size=32)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 1))
        correct = 0
        for x, y in test_loader:
            preds = (torch.sigmoid(model(x)).squeeze(1) > 0.5).long()
            correct += (preds == y).sum().item()
        """,
        # view(-1) on the output
        """
        import torch
        import torch.nn as nn
        from torchvision import datasets
        from torch.utils.data import DataLoader
        loader = DataLoader(datasets.ImageFolder("data/val"), batch_size=64)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1), nn.Sigmoid())
        for images, labels in loader:
            out = model(images).view(-1)
            acc = ((out > 0.5).float() == labels).float().mean()
        """,
        # labels made (N, 1) like the output
        """
        import torch
        import torch.nn as nn
        from torch.utils.data import DataLoader, TensorDataset
        ds = TensorDataset(X, torch.tensor(df["label"].values))
        loader = DataLoader(ds, batch_size=16)
        model = nn.Linear(8, 1)
        criterion = nn.MSELoss()
        for xb, yb in loader:
            loss = criterion(model(xb), yb.unsqueeze(1))
        """,
        # a multi-class head compared after argmax
        """
        import torch.nn as nn
        from torchvision import datasets
        from torch.utils.data import DataLoader
        loader = DataLoader(datasets.MNIST("data", train=False), batch_size=64)
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        for x, y in loader:
            correct = (model(x).argmax(dim=1) == y).sum()
        """,
        # label shapes not known: stay quiet
        """
        import torch
        import torch.nn as nn
        model = nn.Linear(4, 1)
        for x, y in loader:
            correct += ((model(x) > 0) == y).sum()
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn
            from torchvision import datasets, transforms
            from torch.utils.data import DataLoader
            test_set = datasets.ImageFolder("data/test", transform=transforms.ToTensor())
            test_loader = DataLoader(test_set, batch_size=32)
            class CatDog(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.features = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 128), nn.ReLU())
                    self.head = nn.Linear(128, 1)
                def forward(self, x):
                    return self.head(self.features(x))
            model = CatDog()
            correct = 0
            with torch.no_grad():
                for images, labels in test_loader:
                    outputs = model(images)
                    preds = (torch.sigmoid(outputs) > 0.5).float()
                    correct += (preds == labels).sum().item()
            print(correct / len(test_set))
            """,
            line=20, column=20, message_contains="N×N",
        ),
        # MSE between a one-unit regression head and a vector target
        Invalid(
            """
            import torch
            import torch.nn as nn
            from torch.utils.data import DataLoader, TensorDataset
            y = torch.tensor(df["price"].values, dtype=torch.float32)
            train_loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)
            model = nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 1))
            criterion = nn.MSELoss()
            for xb, yb in train_loader:
                loss = criterion(model(xb), yb)
            """,
            line=9, column=12, message_contains="MSELoss",
        ),
        # Keras: predict on a Dense(1) model against 1-D labels
        Invalid(
            """
            import numpy as np
            from tensorflow import keras
            (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(num_words=10000)
            model = keras.Sequential([keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
            model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
            preds = (model.predict(x_test) > 0.5).astype("int32")
            print("accuracy:", np.mean(preds == y_test))
            """,
            line=7, column=28,
        ),
    ]
