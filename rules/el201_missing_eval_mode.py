"""EL201 missing-eval-mode."""
from __future__ import annotations

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.fixkit import insert_around, opening_withs
from evallint.rule import Finding, Invalid, Rule


class MissingEvalMode(Rule):
    """
    ## What it does
    Flags an evaluation loop (a loop over validation/test batches, a function named
    like evaluate/validate/test/predict, or a loop under `torch.no_grad()`) that runs a
    model when no `model.eval()` reaches it: not earlier in the function, and not
    before every in-file call of the function. It fires only when the model has
    dropout or batch-norm layers, or when its layers cannot be resolved; never in
    Lightning's validation/test/predict steps (Lightning switches modes itself).

    ## Why it is wrong
    In training mode dropout keeps zeroing activations and batch-norm normalises with
    the statistics of each evaluation batch (and updates its running averages with
    test data). The reported metric is noisy and too low, and it changes from run to
    run.

    ## Example
    ```python
    def validate(net, loader):
        correct = 0
        with torch.no_grad():
            for x, y in loader:
                correct += (net(x).argmax(1) == y).sum().item()
        return correct / len(loader.dataset)
    ```

    ## Fix
    Call `net.eval()` before the loop (and `net.train()` after it when the function
    is called from the training loop). Unsafe: the caller may rely on the mode.

    ## References
    - yunjey/pytorch-tutorial#62
    - ipolharvard/ethos-ares#20
    """

    code = "EL201"
    name = "missing-eval-mode"
    summary = "An evaluation loop runs the model without `model.eval()`: dropout/batch-norm stay in training mode."
    severity = Severity.ERROR
    fixable = Applicability.UNSAFE
    tokens = TORCH_TOKENS
    replay_probe = "mode"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for p in facts.eval_passes:
            if p.reason == "lightning" or facts.eval_mode_reaches(p.model, p.loop.stmt):
                continue
            sensitive = facts.model_sensitivity(p.model, p.loop.stmt)
            if sensitive is False:
                continue
            why = "has dropout/batch-norm layers" if sensitive else "may have dropout/batch-norm layers"
            message = (f"`{p.model}` runs in training mode in this evaluation loop ({p.reason}): no "
                       f"`{p.model}.eval()` reaches it, and the model {why}")
            after = [f"{p.model}.train()"] if facts.called_from_training(p.loop.stmt) else []
            fix = self.fix(Applicability.UNSAFE, f"Call `{p.model}.eval()` before the loop"
                           + (f" and `{p.model}.train()` after it" if after else ""),
                           insert_around(opening_withs(p.loop.stmt), before=[f"{p.model}.eval()"], after=after))
            yield Finding(p.call, message, fix)

    VALID = [
        # the official CIFAR-10 tutorial: no eval(), but the net has no dropout/batch-norm
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(3, 6, 5)
                self.pool = nn.MaxPool2d(2, 2)
                self.fc1 = nn.Linear(16 * 5 * 5, 10)

            def forward(self, x):
                return self.fc1(torch.flatten(self.pool(F.relu(self.conv1(x))), 1))

        net = Net()
        correct = 0
        with torch.no_grad():
            for images, labels in testloader:
                outputs = net(images)
                correct += (outputs.argmax(1) == labels).sum().item()
        """,
        # eval() before the loop
        """
        import torch
        def evaluate(model, loader):
            model.eval()
            with torch.no_grad():
                for x, y in loader:
                    out = model(x)
        """,
        # the caller puts the model in eval mode under no_grad before calling
        """
        import torch
        def evaluate(model, loader):
            total = 0
            for x, y in loader:
                total += (model(x).argmax(1) == y).sum().item()
            return total

        def main(model, val_loader):
            model.eval()
            with torch.no_grad():
                acc = evaluate(model, val_loader)
        """,
        # `model.to(device).eval()` switches the model
        """
        import torch
        def evaluate(model, test_loader, device):
            model.to(device).eval()
            with torch.no_grad():
                for x, y in test_loader:
                    out = model(x.to(device))
        """,
        # a helper method switches the model
        """
        import torch
        class Runner:
            def on_eval_start(self):
                self.net.eval()

            def validate(self, val_loader):
                self.on_eval_start()
                with torch.no_grad():
                    for x, y in val_loader:
                        out = self.net(x)
        """,
        # `model.eval` without () is EL204's finding, not a second one here
        """
        import torch
        def evaluate(model, loader):
            model.eval
            with torch.no_grad():
                for x, y in loader:
                    out = model(x)
        """,
        # Lightning switches modes itself
        """
        import torch
        import pytorch_lightning as pl
        class Lit(pl.LightningModule):
            def validation_step(self, batch, batch_idx):
                for x, y in batch:
                    out = self.model(x)
        """,
        # single-batch evaluation outside any loop
        """
        import torch
        def predict(model, x):
            with torch.no_grad():
                return model(x)
        """,
        # training loop over the training data
        """
        import torch
        for x, y in train_loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            def validate(net, loader):
                correct = 0
                with torch.no_grad():
                    for x, y in loader:
                        correct += (net(x).argmax(1) == y).sum().item()
                return correct / len(loader.dataset)
            """,
            line=6, column=25,
            fixed="""
            import torch
            def validate(net, loader):
                correct = 0
                net.eval()
                with torch.no_grad():
                    for x, y in loader:
                        correct += (net(x).argmax(1) == y).sum().item()
                return correct / len(loader.dataset)
            """,
        ),
        # called from the training loop: training mode is restored after the loop
        Invalid(
            """
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))

            def evaluate(loader):
                with torch.no_grad():
                    # score the held-out data
                    for x, y in loader:
                        preds = model(x).argmax(1)

            for epoch in range(3):
                for x, y in train_loader:
                    criterion(model(x), y).backward()
                    optimizer.step()
                evaluate(val_loader)
            """,
            line=9, column=21,
            fixed="""
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))

            def evaluate(loader):
                model.eval()
                with torch.no_grad():
                    # score the held-out data
                    for x, y in loader:
                        preds = model(x).argmax(1)
                model.train()

            for epoch in range(3):
                for x, y in train_loader:
                    criterion(model(x), y).backward()
                    optimizer.step()
                evaluate(val_loader)
            """,
        ),
        # notebook style, top level, pretrained network (batch-norm inside)
        Invalid(
            """
            import torch
            import torchvision
            model = torchvision.models.resnet18(weights="DEFAULT")
            with torch.no_grad():
                for images, labels in test_loader:
                    logits = model(images)
            """,
            line=6, column=18,
            fixed="""
            import torch
            import torchvision
            model = torchvision.models.resnet18(weights="DEFAULT")
            model.eval()
            with torch.no_grad():
                for images, labels in test_loader:
                    logits = model(images)
            """,
        ),
    ]
