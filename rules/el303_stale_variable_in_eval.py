"""EL303 stale-variable-in-eval."""
from __future__ import annotations

from evallint.diagnostic import Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.rule import Finding, Invalid, Rule


class StaleVariableInEval(Rule):
    """
    ## What it does
    Flags an evaluation loop that reads a name (`outputs`, `loss`, `preds`, `inputs`)
    whose only definitions are in an earlier training loop of the same function: the
    training loop's batch variables, model outputs or losses. The evaluation loop never
    assigns the name itself, so every evaluation batch sees the value left over from
    the last training batch.

    ## Why it is wrong
    The metric is computed from training values, not from the evaluation batch: it is
    the same number for every batch, or mixes training outputs with validation labels.
    Nothing crashes, because the stale name is still defined.

    ## Example
    ```python
    for inputs, labels in train_loader:
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        ...
    for images, targets in val_loader:
        logits = model(images)
        val_loss += criterion(outputs, targets).item()   # `outputs` is from training
    ```

    ## Fix
    Use the evaluation loop's own variables (`logits` here). No automatic fix: which
    name was meant is the author's call.

    ## References
    - metatensor/metatrain#160
    """

    code = "EL303"
    name = "stale-variable-in-eval"
    summary = "The evaluation loop reads a variable that only the training loop defines."
    severity = Severity.ERROR
    fixable = None
    tokens = (("backward",), TORCH_TOKENS)
    replay_probe = "stale"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for r in facts.stale_reads:
            yield Finding(r.node, f"`{r.name}` is only defined in the training loop: this evaluation loop "
                                  "reads the value left over from the last training batch")

    VALID = [
        # the evaluation loop defines its own outputs
        """
        import torch
        for x, y in train_loader:
            outputs = model(x)
            loss = criterion(outputs, y)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            for x, y in val_loader:
                outputs = model(x)
                val_loss += criterion(outputs, y).item()
        """,
        # names defined before both loops are not stale
        """
        import torch
        hidden = model.init_hidden()
        for x, y in train_loader:
            out, hidden = model(x, hidden)
            criterion(out, y).backward()
            optimizer.step()
        with torch.no_grad():
            for x, y in val_loader:
                out, _ = model(x, hidden)
        """,
        # the step counter of the training loop is fine to log
        """
        import torch
        for epoch in range(3):
            for step, (x, y) in enumerate(train_loader):
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                for x, y in val_loader:
                    log(step, model(x))
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            for epoch in range(10):
                for inputs, labels in train_loader:
                    optimizer.zero_grad()
                    outputs = model(inputs)
                    loss = criterion(outputs, labels)
                    loss.backward()
                    optimizer.step()
                with torch.no_grad():
                    for images, targets in val_loader:
                        logits = model(images)
                        val_loss += criterion(outputs, targets).item()
            """,
            line=12, column=35,
        ),
        # periodic validation inside the training loop builds its target from the training batch
        Invalid(
            """
            import torch
            for step, batch in enumerate(train_loader):
                loss = criterion(model(batch["x"]), batch["y"])
                loss.backward()
                optimizer.step()
                if step % 100 == 0:
                    with torch.no_grad():
                        for val_batch in val_loader:
                            pred = model(val_batch["x"])
                            val_loss = criterion(pred, batch["y"]).item()
            """,
            line=10, column=44,
        ),
    ]
