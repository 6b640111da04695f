"""EL204 mode-call-missing-parens."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.exprs import dotted
from evallint.facts.loops import NO_GRAD
from evallint.rule import Change, Finding, Invalid, Rule

# Methods that only do something when called.
_METHODS = {"eval", "train", "zero_grad", "step", "backward"}
_CONTEXTS = NO_GRAD | {"torch.enable_grad", "torch.autograd.enable_grad"}


class ModeCallMissingParens(Rule):
    """
    ## What it does
    Flags `model.eval`, `model.train`, `optimizer.zero_grad`, `optimizer.step` or
    `loss.backward` written as a bare statement without `()`, and
    `with torch.no_grad:` without `()`.

    ## Why it is wrong
    A bare attribute is evaluated and thrown away: the model stays in training mode,
    gradients are never zeroed, the step never happens. `with torch.no_grad:` uses the
    class itself as a context manager and fails (or, in old versions, does nothing).

    ## Example
    ```python
    model.eval
    with torch.no_grad:
        outputs = model(inputs)
    ```

    ## Fix
    Call it: `model.eval()`, `with torch.no_grad():`. Always safe.

    ## References
    - A classic typo reported across PyTorch forums and tutorials.
    """

    code = "EL204"
    name = "mode-call-missing-parens"
    summary = "`model.eval` / `optimizer.zero_grad` / `with torch.no_grad:` without `()` does nothing."
    severity = Severity.ERROR
    fixable = Applicability.SAFE
    tokens = (("eval", "train", "zero_grad", "step", "backward", "no_grad", "inference_mode", "enable_grad"),
              TORCH_TOKENS)
    replay_probe = ("mode", "grad")

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for stmt in facts.statements:
            node = stmt.node
            if isinstance(node, cst.Expr) and isinstance(node.value, cst.Attribute) \
                    and node.value.attr.value in _METHODS and dotted(node.value) is not None:
                attr = node.value
                yield Finding(attr, f"`{dotted(attr)}` without `()` does nothing; call it",
                              self._call_fix(attr))
            elif isinstance(node, cst.With):
                for item in node.items:
                    expr = item.item
                    if isinstance(expr, (cst.Attribute, cst.Name)) and facts.qualify(expr) in _CONTEXTS:
                        yield Finding(expr, f"`with {dotted(expr)}:` needs `()`: "
                                            f"use `with {dotted(expr)}():`", self._call_fix(expr))

    def _call_fix(self, expr):
        return self.fix(Applicability.SAFE, "Add `()`", Change(expr, cst.Call(func=expr)))

    VALID = [
        "import torch\nmodel.eval()\noptimizer.zero_grad()\n",
        "import torch\nwith torch.no_grad():\n    out = model(x)\n",
        # a decorator without parentheses is supported by torch
        "import torch\n@torch.no_grad\ndef predict(model, x):\n    return model(x)\n",
        # reading the attribute is fine when it is used
        "import torch\nis_training = model.train\nfn = optimizer.step\n",
    ]
    INVALID = [
        Invalid("import torch\nmodel.eval\nout = model(x)\n", line=2, column=1,
                fixed="import torch\nmodel.eval()\nout = model(x)\n"),
        Invalid("import torch\nfor x, y in loader:\n    optimizer.zero_grad\n    loss.backward()\n    optimizer.step()\n",
                line=3, column=5,
                fixed="import torch\nfor x, y in loader:\n    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()\n"),
        Invalid("import torch\nwith torch.no_grad:\n    out = model(x)\n", line=2, column=6,
                fixed="import torch\nwith torch.no_grad():\n    out = model(x)\n"),
    ]
