"""EL202 missing-no-grad."""
from __future__ import annotations

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.fixkit import wrap_in_with
from evallint.rule import Finding, Invalid, Rule


class MissingNoGrad(Rule):
    """
    ## What it does
    Flags an evaluation loop that runs a model's forward pass with gradients on: no
    `torch.no_grad()` / `torch.inference_mode()` block or decorator around it, no
    `torch.set_grad_enabled(False)` before it, and not every in-file call of the
    function made under one.

    ## Why it is wrong
    Autograd records the graph of every evaluation batch: memory grows with the batch
    and the pass runs slower (and large models run out of memory on evaluation only).
    The metric itself is right, which is why this goes unnoticed.

    ## Example
    ```python
    def evaluate(model, loader):
        model.eval()
        for x, y in loader:
            preds = model(x).argmax(1)
    ```

    ## Fix
    Wrap the loop in `with torch.no_grad():`. Safe when nothing in the function needs
    gradients; the rule stays quiet for gradient-based evaluation (`backward()`,
    `torch.autograd.grad`, `requires_grad_`, saliency and adversarial attacks).

    ## References
    - PyTorch docs: "Locally disabling gradient computation" (torch.no_grad).
    """

    code = "EL202"
    name = "missing-no-grad"
    summary = "An evaluation loop runs forward passes with gradients on (memory and time)."
    severity = Severity.WARNING
    fixable = Applicability.SAFE
    tokens = TORCH_TOKENS
    replay_probe = "grad"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        reported = set()
        for p in facts.eval_passes:
            if id(p.region) in reported:
                continue  # one finding per pass, at its first forward call
            if p.reason in ("lightning", "no_grad") or facts.grad_disabled(p.stmt) \
                    or facts.parameters_frozen(p.model, p.region):
                continue
            if facts.needs_gradients(p.region):
                continue  # gradient-based evaluation (saliency, attacks) needs them
            reported.add(id(p.region))
            fix = None
            change = wrap_in_with(p.region, "torch.no_grad()")
            if facts.aliases.get("torch") == "torch" and change is not None:
                fix = self.fix(Applicability.SAFE, f"Wrap the {'pass' if p.full_batch else 'loop'} in "
                                                   "`with torch.no_grad():`", change)
            note = ""
            if facts.volatile_variable(p.region):
                note = " (`Variable(..., volatile=True)` has had no effect since PyTorch 0.4)"
            yield Finding(p.call, f"Gradients are recorded for this evaluation forward pass ({p.reason}); "
                                  f"run it under `torch.no_grad()`{note}", fix)

    VALID = [
        """
        import torch
        def evaluate(model, loader):
            model.eval()
            with torch.no_grad():
                for x, y in loader:
                    preds = model(x).argmax(1)
        """,
        """
        import torch
        @torch.no_grad()
        def test(model, test_loader):
            model.eval()
            for x, y in test_loader:
                out = model(x)
        """,
        """
        import torch
        def test(model, test_loader):
            model.eval()
            with torch.inference_mode():
                for x, y in test_loader:
                    out = model(x)
        """,
        # gradient-based evaluation (saliency) needs gradients
        """
        import torch
        def evaluate_saliency(model, val_loader):
            model.eval()
            for x, y in val_loader:
                x.requires_grad_(True)
                model(x).max().backward()
        """,
        # a no_grad context kept in a variable
        """
        import torch
        def evaluate(model, loader):
            model.eval()
            ctx = torch.no_grad()
            with ctx:
                for x, y in loader:
                    out = model(x)
        """,
        # frozen weights: no graph is recorded
        """
        import torch
        def test_frozen(model, test_loader):
            model.eval()
            for p in model.parameters():
                p.requires_grad = False
            for x, y in test_loader:
                out = model(x)
        """,
        # every caller disables gradients
        """
        import torch
        def run_eval(model, loader):
            for x, y in loader:
                out = model(x)

        with torch.no_grad():
            run_eval(model, val_loader)
        """,
        # the training loop needs gradients
        """
        import torch
        for x, y in train_loader:
            loss = criterion(model(x), y)
            loss.backward()
        """,
    ]
    INVALID = [
        # training elsewhere in the function does not excuse the evaluation loop
        Invalid(
            """
            import torch
            def fit(model, train_loader, val_loader, opt, crit):
                model.train()
                for x, y in train_loader:
                    crit(model(x), y).backward()
                    opt.step()
                model.to("cpu").eval()
                for x, y in val_loader:
                    out = model(x)
            """,
            line=9, column=15,
            fixed="""
            import torch
            def fit(model, train_loader, val_loader, opt, crit):
                model.train()
                for x, y in train_loader:
                    crit(model(x), y).backward()
                    opt.step()
                model.to("cpu").eval()
                with torch.no_grad():
                    for x, y in val_loader:
                        out = model(x)
            """,
        ),
        Invalid(
            """
            import torch
            def evaluate(model, loader):
                model.eval()
                correct = 0
                for x, y in loader:
                    preds = model(x).argmax(1)
                    correct += (preds == y).sum().item()
                return correct
            """,
            line=6, column=17,
            fixed="""
            import torch
            def evaluate(model, loader):
                model.eval()
                correct = 0
                with torch.no_grad():
                    for x, y in loader:
                        preds = model(x).argmax(1)
                        correct += (preds == y).sum().item()
                return correct
            """,
        ),
        # top-level loop over the validation loader; a docstring-like string keeps its text
        Invalid(
            '''
            import torch
            model.eval()
            for images, labels in val_loader:
                outputs = model(images)
                note = """multi
            line"""
            ''',
            line=4, column=15,
            fixed='''
            import torch
            model.eval()
            with torch.no_grad():
                for images, labels in val_loader:
                    outputs = model(images)
                    note = """multi
            line"""
            ''',
        ),
    ]
