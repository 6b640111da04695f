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
    `model.train()` called right before the loop undoes any eval() of the callers.
    A full-batch pass (`predictions = model(test_X)`, no loop) is flagged only when
    the model is known to have such layers.

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
            if p.reason == "lightning" or facts.eval_mode_reaches(p.model, p.region) \
                    or facts.sets_mode_inside(p.model, p.region):
                continue  # eval() before the pass, or the mode is switched inside it
            sensitive = facts.model_sensitivity(p.model, p.region)
            if sensitive is False or (p.full_batch and sensitive is None):
                continue  # a full-batch pass is flagged only for a model known to have such layers
            why = "has dropout/batch-norm layers" if sensitive else "may have dropout/batch-norm layers"
            where = "this evaluation pass" if p.full_batch else "this evaluation loop"
            message = (f"`{p.model}` runs in training mode in {where} ({p.reason}): no "
                       f"`{p.model}.eval()` reaches it, and the model {why}")
            after = [f"{p.model}.train()"] if facts.called_from_training(p.region) else []
            change = insert_around(opening_withs(p.region), before=[f"{p.model}.eval()"], after=after)
            fix = None if change is None else self.fix(
                Applicability.UNSAFE, f"Call `{p.model}.eval()` before the {'pass' if p.full_batch else 'loop'}"
                + (f" and `{p.model}.train()` after it" if after else ""), change)
            yield Finding(p.call, message, fix)

    VALID = [
        # a training epoch whose step runs inside a callable (a loss scaler): the model is
        # put in training mode before its batches, so this is no evaluation
        """
        import torch

        def run_one_epoch(model, criterion, loader, optimizer, scaler, mixup):
            model.train(True)
            correct = 0
            for samples, targets in loader:
                samples, targets = mixup(samples, targets)
                outputs = model(samples)
                loss = criterion(outputs, targets)
                scaler(loss, optimizer, parameters=model.parameters())
                correct += (outputs.argmax(1) == targets.argmax(1)).sum().item()
            return correct
        """,
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
        # a full-batch pass whose model cannot be resolved: the caller may set the mode
        """
        import torch
        def test(model, X_test, y_test):
            with torch.no_grad():
                predictions = model(X_test)
            return (predictions.argmax(1) == y_test).float().mean()
        """,
        # a full-batch forward pass in training, with dropout: training mode is right
        """
        import torch
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.Linear(16, 2))
        for epoch in range(50):
            predictions = model(train_X)
            loss = criterion(predictions, train_Y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        """,
        # train() for the training loop, then eval() before the evaluation loop
        """
        import torch
        import torch.nn as nn
        net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
        net.train()
        for x, y in train_loader:
            criterion(net(x), y).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            for x, y in val_loader:
                out = net(x)
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
        # `model.train()` called right before the evaluation loop undoes the caller's eval()
        Invalid(
            """
            import torch
            import torch.nn as nn
            net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))

            def evaluate(model, loader):
                model.train()
                correct = 0
                with torch.no_grad():
                    for x, y in loader:
                        correct += (model(x).argmax(1) == y).sum().item()
                return correct

            net.eval()
            accuracy = evaluate(net, val_loader)
            """,
            line=10, column=25,
            fixed="""
            import torch
            import torch.nn as nn
            net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))

            def evaluate(model, loader):
                model.train()
                correct = 0
                model.eval()
                with torch.no_grad():
                    for x, y in loader:
                        correct += (model(x).argmax(1) == y).sum().item()
                return correct

            net.eval()
            accuracy = evaluate(net, val_loader)
            """,
        ),
        # a full-batch evaluation of a model with dropout
        Invalid(
            """
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(30, 16), nn.Dropout(0.2), nn.Linear(16, 1))
            with torch.no_grad():
                predictions = model(test_X)
            accuracy = ((predictions > 0).float() == test_Y).float().mean()
            """,
            line=5, column=19,
            fixed="""
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(30, 16), nn.Dropout(0.2), nn.Linear(16, 1))
            model.eval()
            with torch.no_grad():
                predictions = model(test_X)
            accuracy = ((predictions > 0).float() == test_Y).float().mean()
            """,
        ),
    ]
