"""Runtime checks in a real evaluation pass: guards and dataset overlap, real torch."""
from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from evallint.runtime import guard, overlap  # noqa: E402
from evallint.runtime.guard import EvalGuardError, EvalGuardWarning  # noqa: E402


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.bn = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(32, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


@pytest.fixture()
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = torch.randint(0, 3, (96,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


def evaluate(model, loader, keepdim=False):
    correct = 0
    for x, y in loader:
        pred = model(x).argmax(1, keepdim=keepdim)
        correct += (pred == y).sum().item()
    return correct


def _kinds(g):
    return sorted(i.kind for i in g.issues)


def test_clean_pass_is_silent(data):
    model = SmallNet().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad(), guard(model) as g:
            evaluate(model, data)
    assert g.issues == []


def test_training_mode_and_grad_are_reported(data):
    model = SmallNet()  # fresh modules are in training mode
    with pytest.warns(EvalGuardWarning) as record:
        with guard(model) as g:
            evaluate(model, data)
    assert _kinds(g) == ["grad", "mode"]
    messages = " ".join(str(w.message) for w in record)
    assert "model.eval()" in messages and "torch.no_grad()" in messages


def test_eval_called_inside_the_guard_counts(data):
    model = SmallNet()
    with torch.no_grad(), guard(model) as g:
        model.eval()
        evaluate(model, data)
    assert g.issues == []


def test_submodule_left_in_training_mode(data):
    model = SmallNet().eval()
    model.drop.train()  # a layer put back in training mode by other code
    with torch.no_grad(), pytest.warns(EvalGuardWarning, match="dropout"), guard(model) as g:
        evaluate(model, data)
    assert _kinds(g) == ["mode"]


def test_broadcast_comparison_is_caught(data):
    model = SmallNet().eval()
    with torch.no_grad(), pytest.warns(EvalGuardWarning, match=r"\(32, 1\) against \(32,\)"), \
            guard(model) as g:
        wrong = evaluate(model, data, keepdim=True)
    assert _kinds(g) == ["broadcast"]
    right = evaluate(model, data)
    assert wrong != right  # the N×N count is not the accuracy


def test_strict_raises(data):
    model = SmallNet()
    with pytest.raises(EvalGuardError, match="training mode"):
        with torch.no_grad(), guard(model, strict=True):
            evaluate(model, data)


def test_guard_without_model_checks_grad_and_shapes():
    a, b = torch.ones(4, requires_grad=True), torch.ones(4, 1)
    with pytest.warns(EvalGuardWarning), guard() as g:
        (a * 2 == b).sum()
    assert _kinds(g) == ["broadcast", "grad"]


# --- overlap --------------------------------------------------------------------------

def test_overlap_fraction_and_examples():
    train = torch.utils.data.TensorDataset(torch.arange(200.).view(100, 2), torch.zeros(100))
    test = torch.utils.data.TensorDataset(torch.arange(120., 320.).view(100, 2), torch.zeros(100))
    rep = overlap(train, test)
    assert rep.n_found == 40 and rep.fraction == pytest.approx(0.4)
    assert rep.examples[0] == (0, 60)
    assert "40 of 100" in str(rep)


def test_overlap_same_and_disjoint_and_loaders():
    ds = torch.utils.data.TensorDataset(torch.randn(50, 3, 4, 4), torch.randint(0, 5, (50,)))
    assert overlap(ds, ds).fraction == 1.0
    loader = torch.utils.data.DataLoader(ds, batch_size=8)
    assert overlap(loader, torch.utils.data.Subset(ds, range(10))).n_found == 10
    other = torch.utils.data.TensorDataset(torch.randn(50, 3, 4, 4), torch.randint(0, 5, (50,)))
    assert overlap(ds, other).n_found == 0


class _Records(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_overlap_any_item_shape():
    train = _Records([{"ids": torch.tensor([1, 2, 3]), "label": 1, "text": "a"},
                      {"ids": torch.tensor([4, 5]), "label": 0, "text": "b"}, 3.5, ("x", 2)])
    test = _Records([{"label": 1, "text": "a", "ids": torch.tensor([1, 2, 3])},  # same, other key order
                     {"ids": torch.tensor([1, 2, 3], dtype=torch.int32), "label": 1, "text": "a"},  # dtype differs
                     3.5, ("x", 3)])
    rep = overlap(train, test)
    assert rep.n_found == 2 and [a for a, _ in rep.examples] == [0, 2]


def test_overlap_key_and_sampling():
    x = torch.randn(1000, 4)
    train = torch.utils.data.TensorDataset(x, torch.zeros(1000))
    test = torch.utils.data.TensorDataset(x.clone(), torch.ones(1000))  # same inputs, other labels
    assert overlap(train, test).n_found == 0
    assert overlap(train, test, key=lambda item: item[0]).fraction == 1.0
    rep = overlap(train, test, max_items=100, key=lambda item: item[0])
    assert rep.sampled and rep.n_test == 100


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_overlap_gpu_items_match_cpu_items():
    x = torch.randn(64, 3, 8, 8)
    train = torch.utils.data.TensorDataset(x)
    test = torch.utils.data.TensorDataset(x[:16].cuda())
    assert overlap(train, test).n_found == 16
