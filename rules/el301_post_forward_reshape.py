"""EL301 post-forward-reshape."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.exprs import dotted, simple_assignment
from evallint.facts.flow import statements_in
from evallint.fixkit import remove
from evallint.rule import Finding, Invalid, Rule

_RESHAPES = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "permute", "transpose", "contiguous"}


def reshaped_name(value, qualify) -> str | None:
    """`torch.flatten(x, ...)` / `x.view(...)` / `x.reshape(...)` -> "x"."""
    if not isinstance(value, cst.Call):
        return None
    func = value.func
    if isinstance(func, cst.Attribute) and func.attr.value in _RESHAPES:
        if qualify(func) in (f"torch.{func.attr.value}",) and value.args:
            arg = value.args[0].value
            return arg.value if isinstance(arg, cst.Name) else None
        return func.value.value if isinstance(func.value, cst.Name) else None
    return None


class PostForwardReshape(Rule):
    """
    ## What it does
    Flags a reshape of a model's input (`inputs = torch.flatten(inputs)`, `.view`,
    `.reshape`, `.flatten`) written after the forward pass that consumed it, when the
    new value is never read.

    ## Why it is wrong
    The preprocessing the author meant never reached the model: it ran on the
    unreshaped tensor, and the reshaped one is thrown away. Either the model silently
    gets the wrong layout, or the line is dead code that misleads readers.

    ## Example
    ```python
    for inputs, targets in loader:
        outputs = model(inputs)
        inputs = torch.flatten(inputs)
        loss = criterion(outputs, targets)
    ```

    ## Fix
    Delete the dead statement, or move it before the forward pass if that was the
    intent. Unsafe: evallint cannot know which.

    ## References
    - Seen in regression tutorials where the flatten was meant to come first.
    """

    code = "EL301"
    name = "post-forward-reshape"
    summary = "An input is reshaped after the forward pass and never used: the model never saw it."
    severity = Severity.WARNING
    fixable = Applicability.UNSAFE
    tokens = (tuple(_RESHAPES), TORCH_TOKENS)
    replay_probe = "metric"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for stmt in facts.statements:
            pair = simple_assignment(stmt.node)
            if pair is None:
                continue
            name, value = pair
            if reshaped_name(value, facts.qualify) != name:
                continue
            forward = self._forward_before(facts, stmt, name)
            if forward is None or self._read_later(facts, stmt, name):
                continue
            yield Finding(stmt.node, f"`{name}` is reshaped after `{forward}(...)` already consumed it, "
                                     "and the new value is never used",
                          self.fix(Applicability.UNSAFE, "Delete the dead reshape", remove(stmt)))

    def _forward_before(self, facts, stmt, name):
        """The model that consumed `name` earlier in the same block."""
        for sibling in reversed(stmt.block[: stmt.index]):
            if name in sibling.stores:
                return None
            for call in sibling.calls:
                key = facts.model_key(call)
                if key and any(isinstance(a.value, cst.Name) and a.value.value == name for a in call.args):
                    return key
        return None

    def _read_later(self, facts, stmt, name) -> bool:
        """Could the reshaped value be read: by the next iteration or later code?"""
        loops = facts.enclosing_loops(stmt)
        if loops and name not in loops[0].targets:
            # The next iteration starts at the top of the body: a read there, before
            # any rebinding, sees the reshaped value.
            for s in statements_in(loops[0].stmt, facts.index):
                if s.order >= stmt.order:
                    return True  # nothing rebinds it: the next forward pass reads it
                if name in s.loads:
                    return True
                if name in s.stores:
                    break
        skip_until = -1
        for s in facts.index.function_body(stmt.function):
            if s.order <= stmt.end_order or s.order <= skip_until:
                continue
            if isinstance(s.node, cst.For) and name in s.stores and name not in s.loads:
                skip_until = s.end_order  # the loop binds it before its body reads it
                continue
            if name in s.loads:
                return True
            if name in s.stores and (s.parent is None or s.parent is stmt.parent or s.parent.contains(stmt)):
                return False  # overwritten unconditionally before any read
        return False

    VALID = [
        # reshaped before the forward pass
        "import torch\nfor inputs, y in loader:\n    inputs = torch.flatten(inputs, 1)\n    out = model(inputs)\n",
        # the reshaped value is used afterwards
        "import torch\nfor x, y in loader:\n    out = model(x)\n    x = x.flatten(1)\n    plot(x)\n",
        # not a model's input
        "import torch\nfor x, y in loader:\n    out = model(x)\n    y = y.view(-1)\n    loss = criterion(out, y)\n",
        # outside a loop and read later
        "import torch\nout = net(images)\nimages = images.view(-1)\nshow(images)\n",
        # no loop target rebinds it: the next iteration feeds the reshaped value to the model
        "import torch\nfor step in range(10):\n    out = model(state)\n    state = state.view(-1)\n",
    ]
    INVALID = [
        Invalid(
            """
            import torch
            for inputs, targets in train_loader:
                outputs = model(inputs)
                inputs = torch.flatten(inputs)
                loss = criterion(outputs, targets)
            """,
            line=4, column=5,
            fixed="""
            import torch
            for inputs, targets in train_loader:
                outputs = model(inputs)
                loss = criterion(outputs, targets)
            """,
        ),
        # a later loop rebinds the name before reading it: still dead here
        Invalid(
            """
            import torch
            def run(model, train_loader, test_loader):
                for inputs, targets in train_loader:
                    outputs = model(inputs)
                    inputs = torch.flatten(inputs)
                for inputs, targets in test_loader:
                    print(model(inputs).shape, inputs.shape)
            """,
            line=5, column=9,
            fixed="""
            import torch
            def run(model, train_loader, test_loader):
                for inputs, targets in train_loader:
                    outputs = model(inputs)
                for inputs, targets in test_loader:
                    print(model(inputs).shape, inputs.shape)
            """,
        ),
        Invalid(
            """
            import torch
            def test(net, loader):
                for x, y in loader:
                    pred = net(x)
                    x = x.view(x.size(0), -1)
                    print(pred.shape)
            """,
            line=5, column=9,
            fixed="""
            import torch
            def test(net, loader):
                for x, y in loader:
                    pred = net(x)
                    print(pred.shape)
            """,
        ),
    ]
