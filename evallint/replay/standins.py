"""Stand-ins for a region's free names, built in the child process on the chosen device.

The data are seeded; each input row carries, in its first feature, the class the
planted model will predict for it, so the model's accuracy is exact (e.g. 730 of 1000
= 73.0%) whatever batches the region makes. The model is a real nn.Module with a
dropout and a batch-norm layer that change its output in training mode and a linear
layer whose parameters make outputs require grad when autograd is on.
torch is imported lazily: this module is only used inside the child.
"""
from __future__ import annotations

from typing import Any


def make_data(torch, world: dict, device, seed: int) -> dict:
    """Inputs X, labels Y and the planted predictions, identical for every run."""
    g = torch.Generator().manual_seed(seed)
    n, classes = world["n"], world["classes"]
    y = torch.randint(0, classes, (n,), generator=g)
    k = round(world["accuracy"] * n)
    mask = torch.zeros(n, dtype=torch.bool)
    # Right predictions thin out along the data (weights 1.5 -> 0.5, exactly k of them):
    # batches differ in accuracy, so weighting the short last batch wrongly shows.
    mask[torch.multinomial(torch.linspace(1.5, 0.5, n), k, replacement=False, generator=g)] = True
    wrong = (y + 1 + torch.randint(0, max(classes - 1, 1), (n,), generator=g)) % classes
    pred = torch.where(mask, y, wrong)
    x = torch.randn(n, world["features"], generator=g)
    x[:, 0] = pred.float()
    if world["head"] == "binary":
        labels = y.float()
        if world["label_layout"] == "column":
            labels = labels.unsqueeze(1)
    else:
        labels = y
    return {"X": x.to(device), "Y": labels.to(device), "pred": pred, "y": y}


def make_model_class(torch):
    nn = torch.nn

    class PlantedModel(nn.Module):
        """Predicts the class written in each input's first feature (eval mode)."""

        def __init__(self, classes: int, head: str, output: str) -> None:
            super().__init__()
            self.classes, self.head_kind, self.output = classes, head, output
            self.dropout = nn.Dropout(0.5)
            self.linear = nn.Linear(classes, classes, bias=False)
            with torch.no_grad():
                self.linear.weight.copy_(4.0 * torch.eye(classes))
            self.norm = nn.BatchNorm1d(1 if head == "binary" else classes)
            self.calls: list[dict] = []  # what each forward saw, for the probes

        def forward(self, x, *args, **kwargs):  # graph models also take edge_index, batch
            code = x.reshape(x.shape[0], -1)[:, 0].round().long().clamp(0, self.classes - 1)
            h = self.linear(self.dropout(torch.nn.functional.one_hot(code, self.classes).float()))
            if self.head_kind == "binary":
                h = (h[:, 1] - h[:, 0]).unsqueeze(1)
                flat = x.reshape(x.shape[0], -1)
                if flat.shape[1] > 1:
                    # Confidence varies by sample (|logit| in 0.05..~3, from the second
                    # feature): thresholds at 0.5 on logits then differ from thresholds at 0.
                    h = h * (0.05 + flat[:, 1:2].abs().to(h.dtype)) / 4.0
            out = self.norm(h)
            if self.head_kind == "binary" and self.output == "probs":
                out = torch.sigmoid(out)
            record = {"training": self.training, "grad_enabled": torch.is_grad_enabled(),
                      "requires_grad": out.requires_grad, "out": out.detach().to("cpu"), "backward": False}
            if out.requires_grad:
                # A training step is a forward pass whose output gradients flow back through.
                out.register_hook(lambda grad: record.__setitem__("backward", True))
            self.calls.append(record)
            return out

    return PlantedModel


def build(torch, world: dict, roles: dict, device, seed: int, model_mode: str = "train",
          self_attrs: Any = None) -> tuple[dict, Any]:
    """Bind each free name to its stand-in; returns (bindings, model)."""
    data = make_data(torch, world, device, seed)
    model = make_model_class(torch)(world["classes"], world["head"], world["binary_output"]).to(device)
    model.train(model_mode == "train")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data["X"], data["Y"]),
                                         batch_size=world["batch_size"], shuffle=False)
    if world.get("batches") == "record":
        from .records import RecordLoader

        loader = RecordLoader(torch, loader)
    reduction = world.get("loss_reduction", "mean")
    if world["head"] == "binary":
        criterion = torch.nn.BCEWithLogitsLoss(reduction=reduction) if world["binary_output"] == "logits" \
            else torch.nn.BCELoss(reduction=reduction)
    else:
        criterion = torch.nn.CrossEntropyLoss(reduction=reduction)
    makers = {
        "model": lambda: model,
        "loader": lambda: loader,
        "criterion": lambda: criterion,
        "optimizer": lambda: torch.optim.SGD(model.parameters(), lr=0.1),
        "device": lambda: device,
        "inputs": lambda: data["X"],
        "labels": lambda: data["Y"],
        "batch_size": lambda: world["batch_size"],
        "num_classes": lambda: world["classes"],
        "progress": lambda: _passthrough,
        "transformer": lambda: _IdentityTransformer(),
        "counter": lambda: 0,
        "epochs": lambda: 2,
        "stale": lambda: _training_batch_outputs(torch, world, device, seed),
    }
    # A method's `self`: its attributes stand in by their roles (see selfstub.py).
    makers["self"] = lambda: _SelfStandIn({a: makers[r]() if isinstance(r, str) else
                                           _construct(r, device) if "construct" in r else r["literal"]
                                           for a, r in (self_attrs or {}).items()})
    return {name: makers[role]() for name, role in roles.items() if role in makers}, model


def _training_batch_outputs(torch, world: dict, device, seed: int):
    """What a name left over from the training loop holds: the model's outputs on one
    training batch (other samples than the evaluation data, one batch long)."""
    train = make_data(torch, {**world, "n": world["batch_size"]}, device, seed + 1)
    model = make_model_class(torch)(world["classes"], world["head"], world["binary_output"]).to(device).eval()
    with torch.no_grad():
        return model(train["X"])


def _construct(attr: dict, device):
    """A metric the class's `__init__` builds (`torchmetrics.Accuracy(task=...)`)."""
    from .metrics_child import _torchmetrics, exec_imports

    _torchmetrics()  # imported past the stand-in torchvision; says how to install it when absent
    ns: dict = {"__builtins__": __builtins__}
    exec_imports(ns, attr["imports"])
    return eval(compile(attr["construct"], "<replay-self>", "eval"), ns).to(device)


class _SelfStandIn:
    def __init__(self, attrs: dict) -> None:
        self.__dict__.update(attrs)


class _IdentityTransformer:
    """A fitted scaler or encoder of the skipped set-up: the stand-in data stay as they are."""

    def transform(self, x, *args, **kwargs):
        return x

    inverse_transform = fit_transform = transform


def _passthrough(iterable=None, *args, **kwargs):
    """A tqdm-like wrapper that only iterates."""
    return iterable


def ground_truth(torch, world: dict, device, seed: int) -> dict:
    """The metrics computed straight from the synthetic data, not from the user's code."""
    data = make_data(torch, world, device, seed)
    correct = int((data["pred"] == data["y"]).sum())
    n = world["n"]
    model = make_model_class(torch)(world["classes"], world["head"], world["binary_output"]).to(device).eval()
    with torch.no_grad():
        out = model(data["X"])
    f = torch.nn.functional
    if world["head"] == "binary":
        target = data["y"].float().to(device).unsqueeze(1)
        loss = (f.binary_cross_entropy_with_logits(out, target) if world["binary_output"] == "logits"
                else f.binary_cross_entropy(out, target))
    else:
        loss = f.cross_entropy(out, data["y"].to(device))
    # The loader's last batch (the short one): the truth of a value printed per batch.
    start = n - (n % world["batch_size"] or world["batch_size"])
    last = int((data["pred"][start:] == data["y"][start:]).sum())
    return {"correct": correct, "errors": n - correct, "total": n, "fraction": correct / n,
            "percent": 100.0 * correct / n, "loss": float(loss.item()), "last_correct": last,
            "last_total": n - start, "last_fraction": last / (n - start),
            "last_percent": 100.0 * last / (n - start)}
