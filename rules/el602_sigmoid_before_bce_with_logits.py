"""EL602 sigmoid-before-bce-with-logits."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import ModuleFacts
from evallint.rule import Finding, Invalid, Rule

from .el601_softmax_before_cross_entropy import activation_findings


class SigmoidBeforeBceWithLogits(Rule):
    """
    ## What it does
    Flags `nn.BCEWithLogitsLoss` / `F.binary_cross_entropy_with_logits` applied to
    probabilities: the output of a model whose `forward` (or `nn.Sequential`) ends in
    a sigmoid, or a value passed through `sigmoid` on its way to the loss.

    ## Why it is wrong
    `BCEWithLogitsLoss` applies the sigmoid itself. Fed `sigmoid(z)`, it trains on
    `sigmoid(sigmoid(z))`, which only ranges over (0.5, 0.73): the loss can never
    reach zero, its gradients are tiny, and the model barely learns. A threshold of
    0.5 on the doubly squashed value then calls every sample positive, which is how
    the same binary classifier can reach 86% in Keras and a few percent in PyTorch.

    ## Example
    ```python
    class Net(nn.Module):
        def forward(self, x):
            return torch.sigmoid(self.out(self.body(x)))

    criterion = nn.BCEWithLogitsLoss()
    loss = criterion(model(x), y)
    ```

    ## Fix
    Return the logits from `forward` and keep `BCEWithLogitsLoss` (numerically
    stable), applying `torch.sigmoid` only where probabilities are needed; or keep
    the sigmoid and use `nn.BCELoss`. Not fixed automatically: other code may rely
    on the probabilities.

    ## References
    - yudi-mars/daisyRec#15 ("Otherwise loss does not converge")
    - NVIDIA-Merlin/models#1175 ("we apply sigmoid twice")
    - lopuhin/kaggle-imet-2019#3
    """

    code = "EL602"
    name = "sigmoid-before-bce-with-logits"
    summary = "Probabilities from a sigmoid are fed to BCEWithLogitsLoss, which applies the sigmoid itself."
    severity = Severity.ERROR
    tokens = (("sigmoid", "Sigmoid", "expit"), ("with_logits", "WithLogits"))

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for node, lc, where in activation_findings(facts, "sigmoid", lambda loss: loss.with_logits):
            yield Finding(node, f"{where}, but `{lc.loss.short}` applies the sigmoid itself: the loss sees "
                                   "sigmoid(sigmoid(logits)) and the model barely learns; pass the logits "
                                   "(or use `BCELoss` on probabilities)")

    VALID = [
        # logits to BCEWithLogitsLoss, sigmoid only for predictions
        """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(30, 1)
            def forward(self, x):
                return self.fc(x)
        model = Net()
        criterion = nn.BCEWithLogitsLoss()
        for x, y in train_loader:
            logits = model(x).squeeze(1)
            loss = criterion(logits, y.float())
            preds = torch.sigmoid(logits) > 0.5
        """,
        # a sigmoid output with BCELoss
        """
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
        criterion = nn.BCELoss()
        loss = criterion(model(x), y)
        """,
        # the model keeps its sigmoid separate; only the linear part reaches the loss
        """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(10, 1)
            def forward(self, x):
                return self.fc(x)
            def predict_proba(self, x):
                return torch.sigmoid(self.fc(x))
        model = Net()
        loss = nn.BCEWithLogitsLoss()(model(x), y)
        """,
        # sigmoid applied to the target (soft labels), not the input
        """
        import torch
        import torch.nn.functional as F
        loss = F.binary_cross_entropy_with_logits(student(x), torch.sigmoid(teacher(x)))
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn
            class BinaryClassifier(nn.Module):
                def __init__(self, n_features):
                    super().__init__()
                    self.hidden = nn.Linear(n_features, 32)
                    self.out = nn.Linear(32, 1)
                def forward(self, x):
                    x = torch.relu(self.hidden(x))
                    return torch.sigmoid(self.out(x))
            model = BinaryClassifier(30)
            criterion = nn.BCEWithLogitsLoss()
            for xb, yb in train_loader:
                loss = criterion(model(xb), yb.unsqueeze(1))
                loss.backward()
            """,
            line=10, column=16, message_contains="criterion(model(xb), yb.unsqueeze(1))",
        ),
        # a loss object kept on self in a LightningModule
        Invalid(
            """
            import torch.nn as nn
            import lightning as L
            class Model(L.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.net = nn.Sequential(nn.Linear(8, 1), nn.Sigmoid())
                    self.loss_fn = nn.BCEWithLogitsLoss()
                def forward(self, x):
                    return self.net(x)
                def training_step(self, batch, batch_idx):
                    x, y = batch
                    out = self(x)
                    return self.loss_fn(out, y)
            """,
            line=6, column=51,
        ),
        # sigmoid applied by hand
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            probs = model(x).sigmoid()
            loss = F.binary_cross_entropy_with_logits(probs, y)
            """,
            line=3, column=9,
        ),
    ]
