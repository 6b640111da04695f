"""The loader, accumulator and model-output facts that the metric-arithmetic rules read."""
from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from evallint.facts import ModuleFacts
from evallint.facts import accumulators as acc


def _facts(code: str) -> ModuleFacts:
    return ModuleFacts(cst.parse_module(textwrap.dedent(code).lstrip("\n")))


@pytest.mark.parametrize("args,batch_size,drop_last", [
    ("ds", 1, False),
    ("ds, batch_size=64", 64, False),
    ("ds, 32, True", 32, False),
    ("ds, batch_size=BS, drop_last=True", 128, True),
    ("ds, batch_size=args.bs", None, False),
    ("ds, batch_sampler=sampler", None, False),
    ("**kwargs", None, None),
])
def test_loader_batch_size_and_drop_last(args, batch_size, drop_last):
    facts = _facts(f"""
        import torch
        from torch.utils.data import DataLoader
        BS = 128
        loader = DataLoader({args})
        for x, y in loader:
            pass
        """)
    loop = facts.loops[0]
    info = facts.loader_info("loader", loop.stmt)
    assert info is not None
    assert info.batch_size == batch_size
    assert info.drop_last == drop_last


def test_loader_through_callers_and_graph_loaders():
    facts = _facts("""
        import torch
        from torch_geometric.loader import DataLoader
        def test(loader):
            for data in loader:
                pass
        test(DataLoader(ds, batch_size=8))
        val_loader = DataLoader(ds, batch_size=16)
        test(val_loader)
        """)
    loop = facts.loops[0]
    # one caller passes a call (unknown), so the parameter stays unresolved
    assert facts.loader_info("loader", loop.stmt) is None
    only_named = _facts("""
        import torch
        from torch_geometric.loader import DataLoader
        def test(loader):
            for data in loader:
                pass
        val_loader = DataLoader(ds, batch_size=16)
        test(val_loader)
        """)
    info = only_named.loader_info("loader", only_named.loops[0].stmt)
    assert info.batch_size == 16 and info.is_graph and info.batches_len


def test_what_accumulators_add_and_what_they_are_divided_by():
    facts = _facts("""
        import torch
        import torch.nn as nn
        criterion = nn.CrossEntropyLoss()
        summed = nn.CrossEntropyLoss(reduction="sum")
        correct = total = batches = 0
        loss_mean = loss_weighted = loss_sum = acc_mean = fixed = 0.0
        for i, (x, y) in enumerate(loader):
            out = model(x)
            loss = criterion(out, y)
            correct += (out.argmax(1) == y).sum().item()
            total += y.size(0)
            batches += 1
            loss_mean += loss.item()
            loss_weighted += loss.item() * x.size(0)
            loss_sum += summed(out, y).item()
            equals = out.argmax(1) == y
            acc_mean += torch.mean(equals.float()).item()
            fixed += batch_size
        print(correct / total, correct / len(loader), loss_mean / (i + 1), loss_weighted / len(loader.dataset),
              loss_sum / batches)
        """)
    kinds = {a.name: (a.value.kind, a.value.metric) for a in facts.accumulators}
    assert kinds == {
        "correct": (acc.COUNT, None), "total": (acc.SAMPLES, None), "batches": (acc.ONE, None),
        "loss_mean": (acc.BATCH_MEAN, "loss"), "loss_weighted": (acc.SAMPLE_SUM, "loss"),
        "loss_sum": (acc.BATCH_SUM, "loss"), "acc_mean": (acc.BATCH_MEAN, "accuracy"),
        "fixed": (acc.BATCH_SIZE, None),
    }
    by_name = {a.name: a for a in facts.accumulators}
    assert [d.by for d in facts.divisions_of(by_name["correct"])] == [acc.BY_SAMPLES, acc.BY_BATCHES]
    assert [d.by for d in facts.divisions_of(by_name["loss_mean"])] == [acc.BY_BATCHES]
    assert [d.by for d in facts.divisions_of(by_name["loss_weighted"])] == [acc.BY_SAMPLES]
    assert [d.by for d in facts.divisions_of(by_name["loss_sum"])] == [acc.BY_BATCHES]


def test_graph_carrying_losses():
    facts = _facts("""
        import torch
        kept = dropped = 0
        for x, y in train_loader:
            loss = criterion(model(x), y)
            loss.backward()
            kept += loss
            value = loss.item()
            dropped += value
        """)
    analysis = {a.name: a for a in facts.accumulators}
    loop = analysis["kept"].loop
    assert acc.carries_graph(facts, analysis["kept"].values[0], analysis["kept"].updates[0], loop) == "loss"
    assert acc.carries_graph(facts, analysis["dropped"].values[0], analysis["dropped"].updates[0], loop) is None


def test_model_outputs_know_their_loss():
    facts = _facts("""
        import torch
        import torch.nn as nn
        criterion = nn.BCEWithLogitsLoss()
        for x, y in train_loader:
            logits = model(x).squeeze(1)
            criterion(logits, y).backward()
        for x, y in test_loader:
            out = model(x).view(-1)
            probs = torch.sigmoid(out)
        """)
    stmts = {s.node.targets[0].target.value: s for s in facts.statements
             if isinstance(s.node, cst.Assign) and isinstance(s.node.targets[0].target, cst.Name)}
    out = facts.model_output(cst.Name("out"), stmts["probs"])
    assert out is not None and out.key == "model" and out.bce_logits and not out.class_scores
    assert facts.model_output(cst.Name("probs"), stmts["probs"]) is None
