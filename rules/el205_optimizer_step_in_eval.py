"""EL205 optimizer-step-in-eval."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.exprs import dotted
from evallint.rule import Finding, Invalid, Rule


class OptimizerStepInEval(Rule):
    """
    ## What it does
    Flags `optimizer.step()` or `loss.backward()` inside an evaluation loop: a loop
    over validation/test batches, or the batch loop of a function named like
    evaluate/validate/test. Steps under a branch on the phase (`if phase == "train":`,
    `if training:`) and loops of test-time adaptation (functions or classes named like
    adapt/tta/tent/finetune) are left alone, and so is a `backward()` in gradient-based
    evaluation (adversarial examples, saliency: code that reads input gradients).

    ## Why it is wrong
    The model learns from the data it is scored on. The validation or test score rises
    because the test set became training data, and the weights that are saved have
    seen the answers. A `backward()` alone accumulates evaluation gradients into
    `.grad`, which the next training step applies unless they are zeroed first.

    ## Example
    ```python
    for x, y in test_loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Fix
    Remove the backward pass and the optimizer step from evaluation code (and wrap it
    in `torch.no_grad()`). There is no automatic fix: the intent may have been a
    training loop over the wrong loader.

    ## References
    - harvardnlp/annotated-transformer#14
    """

    code = "EL205"
    name = "optimizer-step-in-eval"
    summary = "An optimizer step inside an evaluation loop trains the model on the evaluation data."
    severity = Severity.ERROR
    fixable = None
    tokens = (("step", "backward"), TORCH_TOKENS)
    replay_probe = None

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for s in facts.eval_optimizer_steps:
            if s.call.func.attr.value == "backward":
                why = "evaluation gradients accumulate and the next optimizer step applies them"
            else:
                why = "the model trains on the data it is scored on"
            yield Finding(s.call, f"`{dotted(s.call.func) or 'backward'}()` in evaluation code ({s.reason}): {why}")

    VALID = [
        # the training loop, then a clean evaluation loop
        """
        import torch
        for x, y in train_loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        with torch.no_grad():
            for x, y in test_loader:
                out = model(x)
        """,
        # one loop for both phases, the step only in the training phase
        """
        import torch
        for phase in ["train", "val"]:
            for x, y in dataloaders[phase]:
                with torch.set_grad_enabled(phase == "train"):
                    loss = criterion(model(x), y)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
        """,
        # adversarial evaluation: input gradients, no optimizer step
        """
        import torch
        def evaluate_fgsm(model, test_loader, eps):
            for x, y in test_loader:
                x.requires_grad_(True)
                criterion(model(x), y).backward()
                adv = x + eps * x.grad.sign()
                correct = (model(adv).argmax(1) == y).sum()
        """,
        # test-time adaptation updates on purpose
        """
        import torch
        def tent_adapt(model, test_loader, optimizer):
            for x, _ in test_loader:
                loss = entropy(model(x)).mean()
                loss.backward()
                optimizer.step()
        """,
        # the scheduler steps after validation
        """
        import torch
        for x, y in val_loader:
            val_loss += criterion(model(x), y).item()
        scheduler.step(val_loss)
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            for x, y in test_loader:
                loss = criterion(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                correct += (model(x).argmax(1) == y).sum().item()
            """,
            line=6, column=5,
        ),
        # backward in validation: the gradients leak into the next training step
        Invalid(
            """
            import torch
            for src, tgt in valid_loader:
                loss = criterion(model(src), tgt)
                loss.backward()
                total += loss.item()
            """,
            line=4, column=5,
        ),
        Invalid(
            """
            import torch
            def validate(model, loader, opt):
                total = 0.0
                for x, y in loader:
                    loss = criterion(model(x), y)
                    loss.backward()
                    opt.step()
                    total += loss.item()
                return total / len(loader)
            """,
            line=7, column=9,
        ),
    ]
