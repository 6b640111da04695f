"""EL202 missing-no-grad."""
from __future__ import annotations

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.fixkit import wrap_in_with
from evallint.rule import Finding, Invalid, Rule


class MissingNoGrad(Rule):
    """
    ## What it does
    Flags an evaluation pass that runs a model's forward pass with gradients on: no
    `torch.no_grad()` / `torch.inference_mode()` block or decorator around it, no
    `torch.set_grad_enabled(False)` before it, and not every in-file call of the
    function made under one. A pass is a loop over evaluation batches (a loader, an
    index loop `for i in range(0, len(X), bs)`, a `while` loop popping indices) or a
    full-batch forward pass over whole test tensors (`predictions = model(test_X)`);
    it is recognised by names, by context, or by what the code does (it scores the
    model's output against labels and never trains). One finding per pass, at its
    first forward call. Legacy `Variable(x, volatile=True)` does not count: it has
    had no effect since PyTorch 0.4.

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
        # a training loop written by index: it backpropagates
        """
        import torch
        for epoch in range(10):
            for i in range(0, len(X), 64):
                out = model(X[i:i + 64])
                loss = criterion(out, y[i:i + 64])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                correct = (out.argmax(1) == y[i:i + 64]).sum().item()
        """,
        # full-batch training: the forward pass feeds backward()
        """
        import torch
        for epoch in range(100):
            predictions = model(train_X)
            loss = criterion(predictions, train_Y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            accuracy = (predictions.argmax(1) == train_Y).float().mean()
        """,
        # a loss helper that the training step calls: not an evaluation
        """
        import torch
        def compute_loss(model, x, y):
            return criterion(model(x), y)

        def score_batch(net, xb, yb):
            return (net(xb).argmax(1) == yb).sum()

        for x, y in loader:
            loss = compute_loss(model, x, y)
            hits = score_batch(model, x, y)
            loss.backward()
            optimizer.step()
        """,
        # one epoch function for training and evaluation: the optimizer travels in an argument
        """
        import torch
        class LossCompute:
            def __init__(self, criterion, opt=None):
                self.criterion, self.opt = criterion, opt

            def __call__(self, out, y):
                loss = self.criterion(out, y)
                loss.backward()
                if self.opt is not None:
                    self.opt.step()
                return loss.item()

        def run_epoch(loader, model, loss_compute):
            total = 0.0
            for x, y in loader:
                total += loss_compute(model(x), y)
            return total

        run_epoch(train_loader, model, LossCompute(criterion, model_opt))
        """,
        # a bare predict helper: its callers decide the gradient mode
        """
        import torch
        def predict(model, x):
            return model(x).argmax(1)
        """,
        # a model's own methods are part of the model
        """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.Linear(4, 2)

            def forward(self, x):
                return self.encoder(x)

            def score(self, X_test, y_test):
                return (self.encoder(X_test).argmax(1) == y_test).float().mean()
        """,
        # a rollout loop in an environment, not a pass over data
        """
        import torch
        done, total, obs = False, 0.0, env.reset()
        while not done:
            action = policy(torch.as_tensor(obs)).argmax().item()
            obs, reward, done, _ = env.step(action)
            total += reward
        """,
        # a full-batch evaluation under no_grad
        """
        import torch
        model.eval()
        with torch.no_grad():
            predictions = model(test_X)
        accuracy = (predictions.argmax(1) == test_Y).float().mean()
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
        # the bug reports' own shape: a full-batch forward pass over the test tensor
        Invalid(
            """
            import torch
            model.eval()
            predictions = model(test_X)
            predictions_binary = (torch.sigmoid(predictions) > 0.5).float()
            accuracy = torch.sum(predictions_binary == test_Y) / len(test_Y) * 100
            """,
            line=3, column=15,
            fixed="""
            import torch
            model.eval()
            with torch.no_grad():
                predictions = model(test_X)
            predictions_binary = (torch.sigmoid(predictions) > 0.5).float()
            accuracy = torch.sum(predictions_binary == test_Y) / len(test_Y) * 100
            """,
        ),
        # the same in a `test()` method, on attributes
        Invalid(
            """
            import torch
            class Experiment:
                def test(self):
                    self.model.eval()
                    predictions = self.model(self.test_X)
                    return (predictions.argmax(1) == self.test_Y).float().mean()
            """,
            line=5, column=23,
            fixed="""
            import torch
            class Experiment:
                def test(self):
                    self.model.eval()
                    with torch.no_grad():
                        predictions = self.model(self.test_X)
                    return (predictions.argmax(1) == self.test_Y).float().mean()
            """,
        ),
        # a batch loop written by index; one finding per pass, not one more for the loss call
        Invalid(
            """
            import torch
            def evaluate(model, X, y, batch_size=256):
                model.eval()
                total_loss = 0.0
                for i in range(0, len(X), batch_size):
                    xb, yb = X[i:i + batch_size], y[i:i + batch_size]
                    out = model(xb)
                    total_loss += criterion(out, yb).item()
                return total_loss / len(X)
            """,
            line=7, column=15,
            fixed="""
            import torch
            def evaluate(model, X, y, batch_size=256):
                model.eval()
                total_loss = 0.0
                with torch.no_grad():
                    for i in range(0, len(X), batch_size):
                        xb, yb = X[i:i + batch_size], y[i:i + batch_size]
                        out = model(xb)
                        total_loss += criterion(out, yb).item()
                return total_loss / len(X)
            """,
        ),
        # a `while` loop popping indices, recognised by what it does (no evaluation name)
        Invalid(
            """
            import torch
            def count_hits(model, X, y):
                model.eval()
                queue, hits = list(range(len(X))), 0
                while queue:
                    idx = queue.pop()
                    out = model(X[idx].unsqueeze(0))
                    hits += int(out.argmax(1).item() == y[idx])
                return hits
            """,
            line=7, column=15,
            fixed="""
            import torch
            def count_hits(model, X, y):
                model.eval()
                queue, hits = list(range(len(X))), 0
                with torch.no_grad():
                    while queue:
                        idx = queue.pop()
                        out = model(X[idx].unsqueeze(0))
                        hits += int(out.argmax(1).item() == y[idx])
                return hits
            """,
        ),
        # evaluation by behaviour: `narrow` batches, errors counted against the targets
        Invalid(
            """
            import torch
            def compute_nb_errors(model, data_input, data_target, mini_batch_size=100):
                nb_errors = 0
                for b in range(0, data_input.size(0), mini_batch_size):
                    output = model(data_input.narrow(0, b, mini_batch_size))
                    _, predicted = output.max(1)
                    for k in range(mini_batch_size):
                        if data_target[b + k] != predicted[k]:
                            nb_errors += 1
                return nb_errors
            """,
            line=5, column=18,
            fixed="""
            import torch
            def compute_nb_errors(model, data_input, data_target, mini_batch_size=100):
                nb_errors = 0
                with torch.no_grad():
                    for b in range(0, data_input.size(0), mini_batch_size):
                        output = model(data_input.narrow(0, b, mini_batch_size))
                        _, predicted = output.max(1)
                        for k in range(mini_batch_size):
                            if data_target[b + k] != predicted[k]:
                                nb_errors += 1
                return nb_errors
            """,
        ),
        # CamelCase names count like snake_case ones
        Invalid(
            """
            import torch
            def NNTest(net, X, Y):
                net.eval()
                out = net(X)
                return ((out > 0.5).float() == Y).float().mean()
            """,
            line=4, column=11,
            fixed="""
            import torch
            def NNTest(net, X, Y):
                net.eval()
                with torch.no_grad():
                    out = net(X)
                return ((out > 0.5).float() == Y).float().mean()
            """,
        ),
        # a script block under a `# Test` comment, over an unnamed loader
        Invalid(
            """
            import torch
            # Test the network
            model.eval()
            for images, labels in loader:
                outputs = model(images)
                print(outputs.argmax(1)[:8], labels[:8])
            """,
            line=5, column=15,
            fixed="""
            import torch
            # Test the network
            model.eval()
            with torch.no_grad():
                for images, labels in loader:
                    outputs = model(images)
                    print(outputs.argmax(1)[:8], labels[:8])
            """,
        ),
        # the loop was dedented out of its `no_grad` block, which kept only the counters
        Invalid(
            """
            import torch
            with torch.no_grad():
                correct = 0
                total = 0
            for images, labels in loader:
                outputs = net(images)
                total += labels.size(0)
                correct += (outputs.argmax(1) == labels).sum().item()
            print(correct / total)
            """,
            line=6, column=15,
            message_contains="dedented",
            fixed="""
            import torch
            with torch.no_grad():
                correct = 0
                total = 0
            with torch.no_grad():
                for images, labels in loader:
                    outputs = net(images)
                    total += labels.size(0)
                    correct += (outputs.argmax(1) == labels).sum().item()
            print(correct / total)
            """,
        ),
        # `Variable(..., volatile=True)` has done nothing since PyTorch 0.4
        Invalid(
            """
            import torch
            from torch.autograd import Variable
            def test(model, test_loader):
                model.eval()
                for data, target in test_loader:
                    data = Variable(data, volatile=True)
                    output = model(data)
            """,
            line=7, column=18,
            message_contains="volatile",
            fixed="""
            import torch
            from torch.autograd import Variable
            def test(model, test_loader):
                model.eval()
                with torch.no_grad():
                    for data, target in test_loader:
                        data = Variable(data, volatile=True)
                        output = model(data)
            """,
        ),
    ]
