"""The loss facts: which loss objects a module builds, their reduction, their calls."""
from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from evallint.facts import ModuleFacts
from evallint.facts.exprs import dotted


def _facts(code: str) -> ModuleFacts:
    return ModuleFacts(cst.parse_module(textwrap.dedent(code).lstrip("\n")))


@pytest.mark.parametrize("ctor,reduction", [
    ("nn.CrossEntropyLoss()", "mean"),
    ("nn.CrossEntropyLoss(reduction='sum')", "sum"),
    ("nn.CrossEntropyLoss(weight=w, reduction='none')", "none"),
    ("nn.CrossEntropyLoss(w)", "mean"),
    ("nn.NLLLoss(size_average=False)", "sum"),
    ("nn.MSELoss(reduce=False)", "none"),
    ("nn.MSELoss(None, None, 'sum')", "sum"),
    ("nn.KLDivLoss(reduction='batchmean')", "mean"),
    ("nn.BCEWithLogitsLoss(reduction=mode)", None),
    ("nn.BCEWithLogitsLoss(pos_weight=pw).to(device)", "mean"),
])
def test_bound_loss_reduction(ctor, reduction):
    facts = _facts(f"""
        import torch
        from torch import nn
        criterion = {ctor}
        """)
    [loss] = facts.losses
    assert loss.name == "criterion"
    assert loss.cls.startswith("torch.nn.")
    assert loss.reduction == reduction
    assert not loss.functional


def test_loss_calls_in_three_spellings():
    facts = _facts("""
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        criterion = nn.CrossEntropyLoss(reduction="sum")
        for x, y in train_loader:
            out = model(x)
            a = criterion(out, y)
            b = F.binary_cross_entropy_with_logits(out, y.float(), reduction="none")
            c = nn.MSELoss()(input=out, target=y)
        """)
    calls = facts.loss_calls
    assert [c.loss.short for c in calls] == ["CrossEntropyLoss", "binary_cross_entropy_with_logits", "MSELoss"]
    assert [c.loss.reduction for c in calls] == ["sum", "none", "mean"]
    assert [c.loss.functional for c in calls] == [False, True, False]
    assert [dotted(c.input) for c in calls] == ["out", "out", "out"]
    assert dotted(calls[0].target) == "y" and dotted(calls[2].target) == "y"
    assert calls[1].loss.with_logits and calls[0].loss.applies_log_softmax
    assert len(facts.losses) == 3


def test_loss_passed_as_argument_and_self_attribute():
    facts = _facts("""
        import torch
        class Trainer:
            def __init__(self):
                self.loss_fn = torch.nn.BCEWithLogitsLoss()
            def step(self, x, y):
                return self.loss_fn(self.model(x), y)
        def train(model, loader, criterion):
            for x, y in loader:
                loss = criterion(model(x), y)
        crit = torch.nn.NLLLoss(reduction="sum")
        train(net, train_loader, crit)
        """)
    by_name = {c.loss.name: c.loss for c in facts.loss_calls}
    assert by_name["self.loss_fn"].with_logits
    assert by_name["crit"].reduction == "sum"


def test_unknown_losses_stay_unknown():
    facts = _facts("""
        import torch
        criterion = FocalLoss(gamma=2)
        def train(model, loader, criterion):
            for x, y in loader:
                loss = criterion(model(x), y)
        train(net, loader, criterion)
        train(net, loader, torch.nn.MSELoss())
        """)
    assert facts.losses == []
    assert facts.loss_calls == []
