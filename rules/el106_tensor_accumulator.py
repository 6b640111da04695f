"""EL106 tensor-accumulator."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts.accumulators import carries_graph
from evallint.facts.exprs import dotted, last_part, method_call, number
from evallint.facts.flow import scope_statements
from evallint.facts.walk import names_in, walk
from evallint.rule import Change, Finding, Invalid, Rule

# Calls that only look at the number: the total may be a Python float there.
_REPORTING = ("print", "log", "info", "debug", "warning", "add_scalar", "add_scalars", "set_postfix",
              "set_description", "write", "format", "float", "round", "str", "int", "append")


def _is_reporting(call: cst.Call) -> bool:
    name = last_part(dotted(call.func) or "")
    return any(name == r or name.startswith(r) or name.endswith(r) for r in _REPORTING)


def backpropagated(facts, name: str, stmt) -> bool:
    """Is `name` (or an expression of it) `.backward()`-ed or handed to a backward call
    anywhere in its scope? Gradient accumulation and truncated BPTT do that."""
    for s in scope_statements(facts.index, stmt):
        for call in s.calls:
            short = last_part(facts.qualify(call.func) or dotted(call.func) or "")
            mc = method_call(call)
            if short in ("backward", "manual_backward", "grad") or (mc is not None and mc[1] == "backward"):
                if name in names_in(call):
                    return True
    return False


class TensorAccumulator(Rule):
    """
    ## What it does
    Flags a running total that adds the loss tensor itself (`running_loss += loss`) in
    a training loop that backpropagates that loss, outside `torch.no_grad()`.

    ## Why it is wrong
    The loss tensor carries its autograd graph. Adding it to a total links every
    batch's graph into one that lives until the total is dropped: memory grows batch
    after batch until the epoch ends (or the GPU runs out), and the logged number is
    a tensor on the device.

    ## Example
    ```python
    for x, y in train_loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss
    ```

    ## Fix
    Add the number: `total_loss += loss.item()`. The fix is safe when the total only
    feeds printing, logging or a division; otherwise it is explained. A total that is
    itself `.backward()`-ed later (gradient accumulation, truncated BPTT) needs the
    graph and is not flagged.

    ## References
    - pytorch/pytorch#1840
    - PyTorch FAQ: "My model reports cuda runtime error(2): out of memory" (accumulating
      history across the training loop).
    """

    code = "EL106"
    name = "tensor-accumulator"
    summary = "`running_loss += loss` keeps every batch's autograd graph alive."
    severity = Severity.WARNING
    fixable = Applicability.SAFE
    tokens = (("backward",), TORCH_TOKENS)
    replay_probe = "graph"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for acc in facts.accumulators:
            if backpropagated(facts, acc.name, acc.loop.stmt) or self._deliberate_window(facts, acc):
                continue
            for stmt, value in zip(acc.updates, acc.values):
                loss_name = carries_graph(facts, value, stmt, acc.loop)
                if loss_name is None:
                    continue
                fix = None
                if self._only_reported(facts, acc):
                    fix = self.fix(Applicability.SAFE, f"Accumulate `{loss_name}.item()`",
                                   Change(value, cst.parse_expression(f"{loss_name}.item()")))
                yield Finding(value, f"`{acc.name} += {loss_name}` adds the loss tensor with its autograd graph: "
                                     f"every batch's graph stays in memory; add `{loss_name}.item()`", fix)

    @staticmethod
    def _deliberate_window(facts, acc) -> bool:
        """A total kept on the device on purpose: converted explicitly (`.item()`,
        `float()`) and reset inside the loop, every logging or optimizer step; only a
        few graphs are alive at once (torchtune's recipes do this to avoid a sync)."""
        inside = facts.index.statements[acc.loop.stmt.order + 1: acc.loop.stmt.end_order + 1]
        updates = {id(u) for u in acc.updates}
        reset = any(acc.name in s.stores and id(s) not in updates and not isinstance(s.node, cst.AugAssign)
                    for s in inside)
        if not reset:
            return False
        for s in inside:
            for call in s.calls:
                mc = method_call(call)
                if mc is not None and mc[1] in ("item", "detach") and acc.name in names_in(mc[0]):
                    return True
                if isinstance(call.func, cst.Name) and call.func.value == "float" and call.args \
                        and acc.name in names_in(call.args[0].value):
                    return True
        return False

    @staticmethod
    def _only_reported(facts, acc) -> bool:
        """Every later use of the total (and of values computed from it) is printing,
        logging or arithmetic, so a Python float serves as well as the tensor."""
        if acc.init_value is None or number(acc.init_value) is None:
            return False
        updates = {id(u) for u in acc.updates}
        derived = {acc.name}
        for s in scope_statements(facts.index, acc.loop.stmt):
            if s.order <= acc.updates[0].order or id(s) in updates or not (derived & s.loads):
                continue
            if not isinstance(s.node, (cst.Expr, cst.Assign, cst.AugAssign, cst.AnnAssign)):
                return False  # read in an if/for/return/...: the tensor may matter
            if isinstance(s.node, (cst.Assign, cst.AnnAssign)):
                derived |= s.stores
            for node in walk(s.node):
                if isinstance(node, cst.Call):
                    mc = method_call(node)
                    if mc is not None and derived & names_in(mc[0]):
                        return False  # total.item(), avg.cpu(): tensor methods
                    if not _is_reporting(node) and derived & names_in(node) and \
                            not any(isinstance(n, cst.Call) and _is_reporting(n) and derived & names_in(n)
                                    for n in walk(node) if n is not node):
                        return False
        return True

    VALID = [
        # the number, not the tensor
        """
        import torch
        running_loss = 0.0
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        print(running_loss / len(train_loader))
        """,
        # gradient accumulation: the total is backpropagated
        """
        import torch
        for x, y in train_loader:
            total = 0
            for chunk_x, chunk_y in zip(x.chunk(4), y.chunk(4)):
                loss = criterion(model(chunk_x), chunk_y)
                loss.backward(retain_graph=True)
                total += loss
            total.backward()
        """,
        # truncated BPTT: the accumulated loss is backpropagated every k steps
        """
        import torch
        loss_acc = 0
        for step, (x, y) in enumerate(train_loader):
            out, h = rnn(x, h)
            loss = criterion(out, y)
            loss.backward(retain_graph=True)
            loss_acc = loss_acc + loss
            if step % k == 0:
                (loss_acc / k).backward()
                loss_acc = 0
        """,
        # evaluation under no_grad: no graph
        """
        import torch
        total = 0.0
        with torch.no_grad():
            for x, y in val_loader:
                loss = criterion(model(x), y)
                total += loss
        print(total / len(val_loader))
        """,
        # kept on the device on purpose, converted and reset every optimizer step
        """
        import torch
        running_loss = 0
        for idx, batch in enumerate(train_dataloader):
            loss = self._loss_fn(self._model(batch["tokens"]), batch["labels"])
            loss = loss / accumulation_steps
            running_loss += loss
            loss.backward()
            if (idx + 1) % accumulation_steps == 0:
                optimizer.step()
                log({"loss": running_loss.item()})
                running_loss = 0
        """,
        # detached
        """
        import torch
        total = 0.0
        for x, y in train_loader:
            loss = criterion(model(x), y)
            loss.backward()
            total += loss.detach()
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn
            criterion = nn.CrossEntropyLoss()
            for epoch in range(10):
                total_loss = 0
                for x, y in train_loader:
                    optimizer.zero_grad()
                    loss = criterion(model(x), y)
                    loss.backward()
                    optimizer.step()
                    total_loss += loss
                print(f"epoch {epoch}: loss {total_loss / len(train_loader):.4f}")
            """,
            line=11, column=23,
            fixed="""
            import torch
            import torch.nn as nn
            criterion = nn.CrossEntropyLoss()
            for epoch in range(10):
                total_loss = 0
                for x, y in train_loader:
                    optimizer.zero_grad()
                    loss = criterion(model(x), y)
                    loss.backward()
                    optimizer.step()
                    total_loss += loss
                print(f"epoch {epoch}: loss {total_loss / len(train_loader):.4f}")
            """.replace("total_loss += loss\n", "total_loss += loss.item()\n"),
        ),
        # the total is returned: explained, not fixed
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            def train_epoch(model, loader, optimizer):
                epoch_loss = 0.0
                for x, y in loader:
                    optimizer.zero_grad()
                    loss = F.cross_entropy(model(x), y)
                    loss.backward()
                    optimizer.step()
                    epoch_loss += loss
                return epoch_loss / len(loader)
            """,
            line=10, column=23,
        ),
    ]
