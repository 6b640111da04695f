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
    evaluation (adversarial examples, saliency: code that reads input gradients). A
    call in the epoch loop that is handed evaluation data (`run_epoch(val_loader, ...)`)
    is followed into the functions it runs, and into the `__call__` of an object built
    for it: a backward pass or step reached there without a condition is flagged at the
    call.

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
    replay_probe = "params"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for s in facts.eval_optimizer_steps:
            if s.through is not None:
                inner = dotted(s.through.func) or "backward"
                yield Finding(s.call, f"this call is handed evaluation data and runs `{inner}()` in the code it "
                                      "calls: the evaluation trains the model (or leaves its gradients for the "
                                      "next training step)")
                continue
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
        # the shared epoch function only steps when it is given an optimizer
        """
        import torch
        def run_epoch(loader, model, optimizer=None):
            for x, y in loader:
                loss = criterion(model(x), y)
                if optimizer is not None:
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

        for epoch in range(10):
            model.train()
            run_epoch(train_loader, model, optimizer)
            model.eval()
            with torch.no_grad():
                run_epoch(val_loader, model)
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
        # the annotated-transformer shape: the loss object backpropagates in validation too
        Invalid(
            """
            import torch
            class SimpleLossCompute:
                def __init__(self, generator, criterion, opt=None):
                    self.generator, self.criterion, self.opt = generator, criterion, opt

                def __call__(self, x, y):
                    loss = self.criterion(self.generator(x), y)
                    loss.backward()
                    if self.opt is not None:
                        self.opt.step()
                    return loss.item()

            def run_epoch(loader, model, loss_compute):
                return sum(loss_compute(model(x), y) for x, y in loader)

            for epoch in range(10):
                model.train()
                run_epoch(train_loader, model, SimpleLossCompute(model.generator, criterion, opt))
                model.eval()
                print(run_epoch(valid_loader, model, SimpleLossCompute(model.generator, criterion, None)))
            """,
            line=20, column=11,
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
