"""EL203 train-mode-not-restored."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.fixkit import statement
from evallint.rule import Change, Finding, Invalid, Rule


class TrainModeNotRestored(Rule):
    """
    ## What it does
    Flags `model.eval()` that runs inside the epoch loop (directly, or in a function
    the loop calls, up to two levels deep) when the next training step of the same
    model (`loss.backward()` / `optimizer.step()`, later in the same iteration or at
    the start of the next one) runs with no `model.train()` on the way. The switch is
    followed along the loop's path: a `model.train()` at the top of the loop, in the
    training function the loop calls, or in a helper, silences it; so does any call we
    cannot see into that receives the model, and a model known to have no dropout or
    batch-norm layers.

    ## Why it is wrong
    `eval()` is sticky. After the first validation pass the model trains every later
    epoch with dropout off and batch-norm frozen on its running statistics: the
    regularisation is gone, the learning curves and the final score belong to a model
    nobody meant to train, and no error is raised.

    ## Example
    ```python
    model.train()
    for epoch in range(epochs):
        for x, y in train_loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = sum(criterion(model(x), y).item() for x, y in val_loader)
    ```

    ## Fix
    Call `model.train()` at the start of the training phase (the top of the epoch loop
    body, or right before the training phase when evaluation comes first). Safe: it
    restores the mode the training code was written for.

    ## References
    - huggingface/lerobot#3668
    """

    code = "EL203"
    name = "train-mode-not-restored"
    summary = "`model.eval()` in the epoch loop is never undone: later epochs train in eval mode."
    severity = Severity.ERROR
    fixable = Applicability.SAFE
    tokens = (("eval",), ("backward", "step"), TORCH_TOKENS)
    replay_probe = "train_mode"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for leak in facts.mode_leaks:
            if facts.model_sensitivity(leak.key, leak.loop) is False:
                continue  # no dropout/batch-norm: the mode changes nothing
            where = "here" if leak.eval_event.via is leak.eval_event.node else "in the function called here"
            message = (f"`{leak.key}.eval()` runs {where} inside the epoch loop and the next training step "
                       f"runs with no `{leak.key}.train()`: every later epoch trains with dropout and "
                       f"batch-norm in evaluation mode")
            yield Finding(leak.eval_event.via, message, self._fix(leak))

    def _fix(self, leak):
        body = leak.loop.blocks.get("body", [])
        if leak.wraps:
            anchor = body[0] if body else None
        else:
            step = leak.step_event
            nested = step.via is not step.node or not _is_small(step.top)
            anchor = step.top if nested and step.top is not leak.eval_event.top else None
        if anchor is None:
            return None
        change = _insert_before(anchor, f"{leak.key}.train()")
        if change is None:
            return None
        return self.fix(Applicability.SAFE, f"Call `{leak.key}.train()` at the start of the training phase", change)

    VALID = [
        # train() at the top of the epoch loop
        """
        import torch
        for epoch in range(10):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                for x, y in val_loader:
                    out = model(x)
        """,
        # the training function the loop calls switches back
        """
        import torch
        def train_one_epoch(model, loader, optimizer):
            model.train()
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()

        def evaluate(model, loader):
            model.eval()
            with torch.no_grad():
                return [model(x) for x, _ in loader]

        for epoch in range(10):
            train_one_epoch(model, train_loader, optimizer)
            evaluate(model, val_loader)
        """,
        # the evaluation function restores the mode it found
        """
        import torch
        def evaluate(net, loader):
            was_training = net.training
            net.eval()
            with torch.no_grad():
                out = [net(x) for x, _ in loader]
            net.train(was_training)
            return out

        net.train()
        for epoch in range(10):
            for x, y in train_loader:
                optimizer.zero_grad()
                criterion(net(x), y).backward()
                optimizer.step()
            evaluate(net, val_loader)
        """,
        # eval() only after the training loop is over
        """
        import torch
        model.train()
        for epoch in range(10):
            for x, y in train_loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
        model.eval()
        """,
        # no dropout or batch-norm: the mode changes nothing
        """
        import torch
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        for epoch in range(10):
            for x, y in train_loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
            model.eval()
        """,
        # an imported evaluation helper may switch back: unknown, stay quiet
        """
        import torch
        from utils import restore_mode
        for epoch in range(10):
            for x, y in train_loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
            model.eval()
            validate(val_loader)
            restore_mode(model)
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            model.train()
            for epoch in range(10):
                for x, y in train_loader:
                    optimizer.zero_grad()
                    criterion(model(x), y).backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    for x, y in val_loader:
                        out = model(x)
            """,
            line=8, column=5,
            fixed="""
            import torch
            model.train()
            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    optimizer.zero_grad()
                    criterion(model(x), y).backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    for x, y in val_loader:
                        out = model(x)
            """,
        ),
        # test() switches to eval at the end of each epoch of train()
        Invalid(
            """
            import torch
            def test(net, loader):
                net.eval()
                with torch.no_grad():
                    return sum((net(x).argmax(1) == y).sum().item() for x, y in loader)

            def train(net, epochs):
                net.train()
                for epoch in range(epochs):
                    for x, y in train_loader:
                        optimizer.zero_grad()
                        criterion(net(x), y).backward()
                        optimizer.step()
                    print(test(net, test_loader))
            """,
            line=14, column=15,
            fixed="""
            import torch
            def test(net, loader):
                net.eval()
                with torch.no_grad():
                    return sum((net(x).argmax(1) == y).sum().item() for x, y in loader)

            def train(net, epochs):
                net.train()
                for epoch in range(epochs):
                    net.train()
                    for x, y in train_loader:
                        optimizer.zero_grad()
                        criterion(net(x), y).backward()
                        optimizer.step()
                    print(test(net, test_loader))
            """,
        ),
        # evaluation first, then the training phase
        Invalid(
            """
            import torch
            for epoch in range(10):
                model.eval()
                with torch.no_grad():
                    for x, y in val_loader:
                        out = model(x)
                for x, y in train_loader:
                    optimizer.zero_grad()
                    criterion(model(x), y).backward()
                    optimizer.step()
            """,
            line=3, column=5,
            fixed="""
            import torch
            for epoch in range(10):
                model.eval()
                with torch.no_grad():
                    for x, y in val_loader:
                        out = model(x)
                model.train()
                for x, y in train_loader:
                    optimizer.zero_grad()
                    criterion(model(x), y).backward()
                    optimizer.step()
            """,
        ),
    ]


def _is_small(stmt) -> bool:
    return stmt.line_node is not None


def _insert_before(anchor, code: str):
    new = statement(code)
    if anchor.line_node is not None:
        line = anchor.line_node
        if line.body and line.body[0] is not anchor.node:
            return None
        return Change(line, cst.FlattenSentinel([new.with_changes(leading_lines=line.leading_lines),
                                                 line.with_changes(leading_lines=())]))
    node = anchor.node
    return Change(node, cst.FlattenSentinel([new.with_changes(leading_lines=node.leading_lines),
                                             node.with_changes(leading_lines=())]))
