"""The evaluation facts the seed rules stand on: which code is an evaluation pass,
how often a pass is reported, and where a dataset's samples go.

Each test lints real source text with the real rules (or reads the real facts of a
parsed module) and checks one property the rule examples cannot: counts, the
facts themselves, and look-alikes side by side.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst
import pytest

from evallint.config import Settings
from evallint.engine import lint_source
from evallint.facts import ModuleFacts
from evallint.registry import load_rules
from evallint.source import Source

RULES = load_rules()


def _facts(code: str) -> ModuleFacts:
    return ModuleFacts(cst.parse_module(textwrap.dedent(code).lstrip("\n")))


def _findings(code: str, *codes: str):
    settings = Settings(enabled=frozenset(codes), root=Path.cwd())
    text = textwrap.dedent(code).lstrip("\n")
    cst.parse_module(text)  # the example itself must parse
    result = lint_source(Source.from_text(text, "example.py"), settings, RULES)
    assert not result.errors
    return [(d.code, d.line) for d in result.diagnostics if d.code in codes]


def _pass_lines(facts: ModuleFacts) -> list[int]:
    """1-based lines of the forward calls of the module's evaluation passes."""
    code = facts.module.code
    out = []
    for p in facts.eval_passes:
        start = code.index(facts.module.code_for_node(p.stmt.line_node or p.stmt.node))
        out.append(code[:start].count("\n") + 1)
    return out


def test_one_finding_per_pass_even_with_a_loss_module():
    code = """
    import torch
    import torch.nn as nn
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    criterion = nn.CrossEntropyLoss()
    def evaluate(loader):
        model.eval()
        total = 0.0
        for x, y in loader:
            out = model(x)
            loss = criterion(out, y)
            total += loss.item()
        return total
    """
    assert _findings(code, "EL202") == [("EL202", 9)]
    facts = _facts(code)
    assert [p.model for p in facts.eval_passes] == ["model"]  # the loss module is no forward pass


def test_index_and_while_loops_are_batch_loops_only_when_slices_feed_the_model():
    facts = _facts("""
    import torch
    for i in range(0, len(X), 32):
        out = model(X[i:i + 32])
    for epoch in range(10):
        lr = schedule[epoch]
    queue = list(range(10))
    while queue:
        idx = queue.pop()
        out = model(X[idx])
    while not done:
        obs, done = env.step(policy(obs))
    """)
    kinds = [(type(l.stmt.node).__name__, facts.is_batch_loop(l)) for l in facts.evaluation.all_loops]
    assert kinds == [("For", True), ("For", False), ("While", True), ("While", False)]


def test_full_batch_passes_need_evaluation_data_and_no_backward():
    facts = _facts("""
    import torch
    for epoch in range(5):
        out = model(train_X)
        criterion(out, train_Y).backward()
        optimizer.step()
    model.eval()
    predictions = model(test_X)
    masks = model(x, valid_lens=src_valid_len)
    saliency = model(x_test)
    saliency.sum().backward()
    """)
    assert _pass_lines(facts) == [7]
    assert all(p.full_batch and p.region is p.stmt for p in facts.eval_passes)


def test_behaviour_classifies_functions_that_score_without_training():
    facts = _facts("""
    import torch
    def compute_accuracy(net, X, Y):
        return (net(X).argmax(1) == Y).float().mean()

    def compute_loss(net, X, Y):
        return criterion(net(X), Y)

    def describe(net, sequence):
        label = net(sequence).argmax(1)
        return "positive" if label == 1 else "negative"

    def step_and_score(net, X, Y):
        out = net(X)
        criterion(out, Y).backward()
        return (out.argmax(1) == Y).sum()
    """)
    verdicts = {name: facts.evaluation.is_eval_by_behaviour(fs[0]) for name, fs in facts.functions.items()}
    assert verdicts == {"compute_accuracy": True, "compute_loss": False, "describe": False,
                        "step_and_score": False}


def test_a_score_helper_called_inside_training_is_not_evaluation():
    code = """
    import torch
    def score_batch(net, xb, yb):
        return (net(xb).argmax(1) == yb).sum()

    for x, y in loader:
        hits = score_batch(model, x, y)
        criterion(model(x), y).backward()
        optimizer.step()
    """
    assert _findings(code, "EL201", "EL202") == []


def test_reads_after_the_loop_follow_reaching_definitions():
    from evallint.facts.flow import reached_reads_after
    facts = _facts("""
    correct = 0
    for x, y in test_loader:
        correct = (model(x).argmax(1) == y).sum()
    if verbose:
        correct = 0
    print(correct)
    for epoch in range(3):
        correct = 0
        for x, y in val_loader:
            correct += 1
    print(correct)
    """)
    loop = facts.loops[0]
    lines = []
    for s in reached_reads_after(facts.index, "correct", loop.stmt):
        start = facts.module.code.index(facts.module.code_for_node(s.line_node))
        lines.append(facts.module.code[:start].count("\n") + 1)
    assert lines == [6]  # the conditional reset may not run; the epoch loop's reset always does


def test_for_else_is_not_in_the_loop_body():
    facts = _facts("""
    for x, y in test_loader:
        a = 1
    else:
        b = 2
    """)
    body, orelse = [s for s in facts.statements if s.line_node is not None]
    loop = facts.loops[0]
    assert facts.loops_around(body) == [loop] and facts.enclosing_loops(body) == [loop]
    assert facts.loops_around(orelse) == [] and facts.enclosing_loops(orelse) == []


@pytest.mark.parametrize("tail,expected", [
    ("images, labels = next(iter(test_loader))\nshow(images)\n", []),
    ("images, labels = next(iter(test_loader))\nprint((model(images).argmax(1) == labels).float().mean())\n",
     [("EL302", 4)]),
    ("for images, labels in test_loader:\n    show(images)\n    break\n", []),
])
def test_a_loader_over_training_data_is_flagged_once_unless_it_only_lends_a_picture(tail, expected):
    code = ("import torchvision\nfrom torch.utils.data import DataLoader\n"
            "train_loader = DataLoader(trainset, batch_size=64, shuffle=True)\n"
            "test_loader = DataLoader(trainset, batch_size=8)\n") + tail
    code = "trainset = torchvision.datasets.MNIST('data', train=True)\n" + code
    expected = [(c, line + 1) for c, line in expected]
    assert _findings(code, "EL302") == expected


def test_a_held_out_copy_is_quiet_but_the_same_copy_read_whole_is_not():
    head = """
    import torch
    import torchvision
    from torch.utils.data import DataLoader, random_split
    val_full = torchvision.datasets.MNIST("data", train=True, transform=plain)
    """.rstrip(" ")
    assert _findings(head + "    _, val_set = random_split(val_full, [55000, 5000])\n", "EL302") == []
    assert _findings(head + "    val_loader = DataLoader(val_full, batch_size=500)\n", "EL302") == [("EL302", 4)]


def test_ratio_checks_know_samples_from_batches():
    assert _findings("import torch\na = correct / (len(test_loader.dataset) * 100)\n", "EL102") == [("EL102", 2)]
    assert _findings("import torch\na = correct / (len(test_loader) * 100)\n", "EL102") == []
    assert _findings("import torch\na = correct / (batch_idx + 1) / 100\n", "EL102") == []
    assert _findings("import torch\na = correct / total / 100\n", "EL102") == [("EL102", 2)]
