"""EL206 no-grad-bare-call."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.loops import NO_GRAD
from evallint.rule import Finding, Invalid, Rule

# Context managers that do nothing unless entered (set_grad_enabled(False) works as a call;
# a bare enable_grad() is as inert, but gradients are on by default, so it is harmless).
_CONTEXTS = NO_GRAD


class NoGradBareCall(Rule):
    """
    ## What it does
    Flags `torch.no_grad()` (or `torch.inference_mode()`) called as a statement of its
    own.

    ## Why it is wrong
    These are context managers and decorators: calling one builds an object and throws
    it away. Gradients stay on, the evaluation records an autograd graph for every
    batch, and memory grows. (`torch.set_grad_enabled(False)` is different: called as
    a function it does switch gradients off, and is not flagged.)

    ## Example
    ```python
    model.eval()
    torch.no_grad()
    for x, y in test_loader:
        out = model(x)
    ```

    ## Fix
    Use it as a context manager, `with torch.no_grad():` around the loop, or as a
    decorator on the evaluation function. No automatic fix: which statements belong in
    the block is the author's choice.

    ## References
    - A recurring slip in forum threads about evaluation running out of memory.
    """

    code = "EL206"
    name = "no-grad-bare-call"
    summary = "`torch.no_grad()` as a statement does nothing."
    severity = Severity.ERROR
    fixable = None
    tokens = (("no_grad", "inference_mode"), TORCH_TOKENS)

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for stmt in facts.statements:
            node = stmt.node
            if isinstance(node, cst.Expr) and isinstance(node.value, cst.Call) \
                    and facts.qualify(node.value.func) in _CONTEXTS:
                yield Finding(node.value, "a bare `torch.no_grad()`-style call does nothing: use it as "
                                          "`with torch.no_grad():` or as a decorator")

    VALID = [
        "import torch\nwith torch.no_grad():\n    out = model(x)\n",
        "import torch\n@torch.no_grad()\ndef predict(model, x):\n    return model(x)\n",
        # a function call that really switches gradients off
        "import torch\ntorch.set_grad_enabled(False)\nout = model(x)\n",
        # gradients are on by default: a bare enable_grad() changes nothing that matters
        "import torch\ntorch.enable_grad()\nfor x, y in train_loader:\n    loss = model(x).sum()\n",
        # kept in a variable and entered later
        "import torch\nctx = torch.no_grad()\nwith ctx:\n    out = model(x)\n",
    ]
    INVALID = [
        Invalid("import torch\nmodel.eval()\ntorch.no_grad()\nfor x, y in test_loader:\n    out = model(x)\n",
                line=3, column=1),
        Invalid("from torch import inference_mode\ndef predict(model, x):\n    inference_mode()\n    return model(x)\n",
                line=3, column=5),
    ]
