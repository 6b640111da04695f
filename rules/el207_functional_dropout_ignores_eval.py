"""EL207 functional-dropout-ignores-eval."""
from __future__ import annotations

import libcst as cst

from evallint.diagnostic import Applicability, Severity
from evallint.facts import TORCH_TOKENS, ModuleFacts
from evallint.facts import flow
from evallint.facts.exprs import argument, keyword, literal_value, number, positional
from evallint.facts.models import is_module_class
from evallint.facts.walk import names_in, walk
from evallint.rule import Change, Finding, Invalid, Rule

_FUNCTIONAL = "torch.nn.functional."
# Functional dropouts: `training` defaults to True, unlike the nn.Dropout modules.
_DROPOUTS = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"}
_SDPA = "torch.nn.functional.scaled_dot_product_attention"


class FunctionalDropoutIgnoresEval(Rule):
    """
    ## What it does
    Flags, in the methods of a `nn.Module`, `F.dropout(x, p)` (and `dropout2d`,
    `alpha_dropout`, ...) without a `training=` argument, and
    `F.scaled_dot_product_attention(..., dropout_p=p)` whose dropout probability does
    not depend on `self.training`.

    ## Why it is wrong
    The functional forms do not know the module's mode: `F.dropout` defaults to
    `training=True` and attention applies `dropout_p` whenever it is given. After
    `model.eval()` they keep dropping activations, so evaluation is noisy and scores
    too low, and inference is not deterministic.

    ## Example
    ```python
    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.dropout(x, 0.5)
        return self.fc2(x)
    ```

    ## Fix
    Pass the module's mode: `F.dropout(x, 0.5, training=self.training)`, or
    `dropout_p=self.p if self.training else 0.0`; or use an `nn.Dropout` layer. Unsafe:
    a few models drop at inference on purpose (Monte-Carlo dropout), and they should say
    so with `training=True`.

    ## References
    - karpathy/nanoGPT#240
    """

    code = "EL207"
    name = "functional-dropout-ignores-eval"
    summary = "Functional dropout in `forward` without `training=self.training` keeps dropping at evaluation."
    severity = Severity.ERROR
    fixable = Applicability.UNSAFE
    tokens = (("dropout",), TORCH_TOKENS)
    replay_probe = "eval_passes"

    def check(self, facts: ModuleFacts):
        if not facts.uses_torch:
            return
        for cls in facts.classes.values():
            if not is_module_class(cls, facts.classes):
                continue
            for method in cls.methods.values():
                if not method.is_method or method.params[0] != "self":
                    continue
                for call, stmt in facts.calls_within(method.stmt):
                    if stmt.function is not method.stmt or _under_training_branch(stmt, method.stmt):
                        continue
                    name = facts.qualify(call.func) or ""
                    if name.startswith(_FUNCTIONAL) and name[len(_FUNCTIONAL):] in _DROPOUTS:
                        finding = self._dropout(call, name)
                    elif name == _SDPA:
                        finding = self._attention(facts, call, stmt)
                    else:
                        finding = None
                    if finding is not None:
                        yield finding

    def _dropout(self, call: cst.Call, name: str):
        if keyword(call, "training") is not None or positional(call, 2) is not None or any(a.star for a in call.args):
            return None
        p = argument(call, 1, "p")
        if p is not None and number(p) == 0:
            return None
        short = name.rsplit(".", 1)[-1]
        args = list(call.args)
        last = args[-1]
        if last.comma is cst.MaybeSentinel.DEFAULT or not isinstance(last.comma, cst.Comma):
            args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        new_arg = cst.Arg(keyword=cst.Name("training"), value=cst.parse_expression("self.training"),
                          equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
        fixed = call.with_changes(args=[*args, new_arg])
        return Finding(call, f"`F.{short}` without `training=self.training` keeps dropping after `model.eval()`",
                       self.fix(Applicability.UNSAFE, "Pass `training=self.training`", Change(call, fixed)))

    def _attention(self, facts: ModuleFacts, call: cst.Call, stmt):
        if any(a.star for a in call.args):
            return None
        arg = keyword(call, "dropout_p") or positional(call, 4)
        if arg is None:
            return None
        value = arg.value
        lit = literal_value(value)
        if isinstance(lit, float) and lit == 0:
            return None
        if _mentions_training(value):
            return None
        if isinstance(value, cst.Name):
            assigned = flow.assigned_value(facts.index, value.value, stmt)
            if assigned is None or _mentions_training(assigned):
                return None  # set elsewhere (perhaps from self.training): cannot tell
        new_value = cst.parse_expression(f"{_code(value)} if self.training else 0.0")
        return Finding(value, "`dropout_p` of `scaled_dot_product_attention` does not depend on `self.training`: "
                              "attention dropout stays on after `model.eval()`",
                       self.fix(Applicability.UNSAFE, "Use `dropout_p=... if self.training else 0.0`",
                                Change(value, new_value)))

    VALID = [
        """
        import torch.nn as nn
        import torch.nn.functional as F
        class Net(nn.Module):
            def forward(self, x):
                return F.dropout(self.fc(x), 0.5, training=self.training)
        """,
        # the nn.Dropout module follows the mode itself
        """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.5)
            def forward(self, x):
                return self.drop(self.fc(x))
        """,
        # nanoGPT after its fix
        """
        import torch.nn as nn
        import torch.nn.functional as F
        class Attention(nn.Module):
            def forward(self, q, k, v):
                return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0,
                                                      is_causal=True)
        """,
        # Monte-Carlo dropout, explicitly on
        """
        import torch.nn as nn
        import torch.nn.functional as F
        class MCNet(nn.Module):
            def forward(self, x):
                return F.dropout(self.fc(x), 0.2, training=True)
        """,
        # guarded by the mode
        """
        import torch.nn as nn
        import torch.nn.functional as F
        class Net(nn.Module):
            def forward(self, x):
                if self.training:
                    x = F.dropout(x, 0.1)
                return x
        """,
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def forward(self, x):
                    x = F.relu(self.fc1(x))
                    x = F.dropout(x, 0.5)
                    return self.fc2(x)
            """,
            line=6, column=13,
            fixed="""
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def forward(self, x):
                    x = F.relu(self.fc1(x))
                    x = F.dropout(x, 0.5, training=self.training)
                    return self.fc2(x)
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            class CausalSelfAttention(nn.Module):
                def forward(self, q, k, v):
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=None,
                                                                            dropout_p=self.dropout, is_causal=True)
            """,
            line=6, column=75,
            fixed="""
            import torch
            import torch.nn as nn
            class CausalSelfAttention(nn.Module):
                def forward(self, q, k, v):
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=None,
                                                                            dropout_p=self.dropout if self.training else 0.0, is_causal=True)
            """,
        ),
    ]


def _mentions_training(expr) -> bool:
    if "training" in {n.lower() for n in names_in(expr)}:
        return True
    return any(isinstance(n, cst.Attribute) and "train" in n.attr.value.lower() for n in walk(expr))


def _under_training_branch(stmt, function_stmt) -> bool:
    for a in stmt.ancestors():
        if a is function_stmt:
            return False
        if isinstance(a.node, cst.If) and _mentions_training(a.node.test):
            return True
    return False


def _code(expr) -> str:
    return cst.Module([]).code_for_node(expr)
