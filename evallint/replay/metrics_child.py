"""Child side of the torchmetrics probes: runs a LightningModule's step (or builds one
metric) on stand-in batches with real torchmetrics. Used only inside the child.

Lightning itself is never imported: the module's base class is a stand-in whose
`self(x)` is the planted classifier and whose `self.log` reduces as Lightning does at
epoch end: a tensor logged with `on_epoch` becomes the mean of its batch values
weighted by batch size; a Metric object logged becomes its `compute()` over the epoch.
The batches are unshuffled and sorted by class (an ImageFolder read in order), the
classes unbalanced and recalled unequally, so that a per-batch or per-class average
shows against the fraction of correct predictions.
"""
from __future__ import annotations

import inspect
import sys
import types

# The world: 1000 samples, batches of 64, class 0 the majority.
N_SAMPLES, BATCH_SIZE = 1000, 64
_MAJORITY = 0.8          # share of class 0 when there are two classes
_RECALL_MAJOR, _RECALL_MINOR = 0.95, 0.30
_NO_TORCHMETRICS = "torchmetrics is not installed in the Python that runs replay; install it " \
                   "(pip install torchmetrics) to replay this finding"


class NeedsTorchmetrics(Exception):
    pass


def _torchmetrics():
    # The child's stand-in torchvision has no import spec, which torchmetrics' import-time
    # package checks reject: it is set aside while torchmetrics imports.
    stand_ins = {k: sys.modules.pop(k) for k in list(sys.modules)
                 if k.split(".")[0] == "torchvision" and getattr(sys.modules[k], "__spec__", 1) is None}
    try:
        import torchmetrics  # noqa: F401
    except ImportError:
        raise NeedsTorchmetrics(_NO_TORCHMETRICS) from None
    finally:
        sys.modules.update(stand_ins)
    return sys.modules["torchmetrics"]


def exec_imports(ns: dict, imports: list[str]) -> list[str]:
    """Run the allowed imports; one that fails (a package not installed) is skipped and
    named, so that a later NameError can say what was missing."""
    missing = []
    for line in imports:
        try:
            exec(compile(line, "<replay-imports>", "exec"), ns)
        except Exception:  # noqa: BLE001
            missing.append(line)
    return missing


def make_data(torch, classes: int, seed: int) -> dict:
    """Class-sorted labels, planted predictions with unequal recall per class."""
    g = torch.Generator().manual_seed(seed)
    if classes == 2:
        counts = [round(N_SAMPLES * _MAJORITY), N_SAMPLES - round(N_SAMPLES * _MAJORITY)]
    else:
        first = N_SAMPLES // 2
        rest = [(N_SAMPLES - first) // (classes - 1)] * (classes - 1)
        rest[-1] += N_SAMPLES - first - sum(rest)
        counts = [first] + rest
    y = torch.cat([torch.full((c,), k, dtype=torch.long) for k, c in enumerate(counts)])
    pred = y.clone()
    for k, c in enumerate(counts):
        idx = (y == k).nonzero().flatten()
        recall = _RECALL_MAJOR if k == 0 else _RECALL_MINOR
        wrong = idx[torch.randperm(len(idx), generator=g)[: c - round(recall * c)]]
        pred[wrong] = (k + 1 + torch.randint(0, max(classes - 1, 1), (len(wrong),), generator=g)) % classes
    x = torch.randn(N_SAMPLES, 16, generator=g)
    x[:, 0] = pred.float()
    return {"x": x, "y": y, "pred": pred, "classes": classes}


def planted_outputs(torch, x, classes: int, binary: bool):
    code = x.reshape(x.shape[0], -1)[:, 0].round().long().clamp(0, classes - 1)
    if binary:
        return torch.where(code == 1, 2.0, -2.0).float()
    return 4.0 * torch.nn.functional.one_hot(code, classes).float() - 2.0


def _metric_classes(tm):
    return (tm.Metric, tm.MetricCollection)


def _lightning_stub(torch, classes: int, binary: bool, records: list):
    """A module standing for `lightning` / `pytorch_lightning` with a LightningModule
    whose logging is recorded."""
    nn = torch.nn

    class LightningModule(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self.hparams = types.SimpleNamespace()
            self.current_epoch = 0
            self.global_step = 0

        def __call__(self, x, *args, **kwargs):  # the planted classifier
            return planted_outputs(torch, x, classes, binary)

        def save_hyperparameters(self, *args, **kwargs):
            frame = inspect.currentframe().f_back
            for k, v in frame.f_locals.items():
                if k not in ("self", "__class__") and not k.startswith("_"):
                    setattr(self.hparams, k, v)

        @property
        def device(self):
            return torch.device("cpu")

        def log(self, name, value, *args, **kwargs):
            records.append({"name": name, "value": value, "kwargs": kwargs,
                            "line": inspect.currentframe().f_back.f_lineno})

        def log_dict(self, values, *args, **kwargs):
            line = inspect.currentframe().f_back.f_lineno
            items = values.items()
            for name, value in items:
                records.append({"name": name, "value": value, "kwargs": kwargs, "line": line})

        def print(self, *args, **kwargs):
            pass

    mod = types.ModuleType("lightning")
    mod.LightningModule = LightningModule
    mod.pytorch = mod
    return mod


def constructor_args(cls, classes: int) -> dict:
    """Values for the constructor's required parameters, guessed by name."""
    out = {}
    for name, p in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        low = name.lower()
        if "class" in low or "label" in low:
            out[name] = classes
        elif "lr" in low or "rate" in low:
            out[name] = 1e-3
        elif any(w in low for w in ("dim", "size", "hidden", "feature", "channel", "width")):
            out[name] = 16
        else:
            raise RuntimeError(f"`{cls.__name__}` needs the constructor argument `{name}`, which replay cannot guess")
    return out


def _watch(tm, root, calls: dict, made: dict) -> None:
    """Record the inputs every Metric under `root` is updated with, and which metric
    produced each value it returns."""
    for m in root.modules():
        if not isinstance(m, tm.Metric) or id(m) in calls:
            continue
        calls[id(m)] = (m, [])
        forward, update = m.forward, m.update
        state = {"inside": False}

        def wrap(fn, m=m, state=state):
            def inner(*args, **kwargs):
                if not state["inside"]:
                    calls[id(m)][1].append((args, kwargs))
                state["inside"] = True
                try:
                    result = fn(*args, **kwargs)
                finally:
                    state["inside"] = False
                made[id(result)] = m
                return result
            return inner

        m.forward, m.update = wrap(forward), wrap(update)


def _epoch_truth(m, inputs):
    """The metric over the whole epoch: a fresh copy updated with every batch's inputs."""
    fresh = m.clone()
    fresh.reset()
    for args, kwargs in inputs:
        fresh.update(*args, **kwargs)
    return float(fresh.compute())


def _scalar(torch, value):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().float())
    if isinstance(value, (int, float)):
        return float(value)
    return None


def run_logged(torch, job: dict, code: str, seed: int) -> dict:
    """Run the step methods of the module over one epoch of class-sorted batches and
    reduce what they log as Lightning does."""
    tm = _torchmetrics()
    classes, binary = job["classes"], job["binary"]
    records: list = []
    stub = _lightning_stub(torch, classes, binary, records)
    saved = {k: sys.modules.get(k) for k in ("lightning", "lightning.pytorch", "pytorch_lightning")}
    for k in saved:
        sys.modules[k] = stub
    try:
        ns: dict = {"__name__": "__evallint_replay__", "__builtins__": __builtins__}
        exec_imports(ns, job["imports"])
        exec(compile(code, "<replay-module>", "exec"), ns)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    cls = ns[job["class"]]
    torch.manual_seed(seed)
    module = cls(**constructor_args(cls, classes))
    for name, child in list(module.named_children()):
        # The user's networks are never run: a model attribute the step calls is the
        # planted classifier too.
        if not isinstance(child, _metric_classes(tm)) and any(True for _ in child.parameters()):
            setattr(module, name, _Planted(torch, classes, binary))
    # `self.forward(x)` called directly is the planted classifier too.
    module.forward = lambda x, *args, **kwargs: planted_outputs(torch, x, classes, binary)
    calls: dict = {}
    made: dict = {}
    _watch(tm, module, calls, made)
    data = make_data(torch, classes, seed)
    labels = data["y"].float() if binary and job.get("float_labels") else data["y"]
    steps = [getattr(module, s) for s in job["steps"]]
    sizes: list[int] = []
    for i, start in enumerate(range(0, N_SAMPLES, BATCH_SIZE)):
        batch = (data["x"][start:start + BATCH_SIZE], labels[start:start + BATCH_SIZE])
        sizes.append(len(batch[0]))
        first = len(records)
        for step in steps:
            step(batch, i)
        for r in records[first:]:
            r["batch"] = i
    logged: dict = {}
    for r in records:
        e = logged.setdefault(r["name"], {"values": [], "weights": [], "object": None, "line": r["line"],
                                          "source": None})
        value = r["value"]
        if isinstance(value, tm.Metric):
            e["object"] = value
            e["source"] = value
            continue
        v = _scalar(torch, value)
        if v is None:
            continue
        e["values"].append(v)
        e["weights"].append(float(r["kwargs"].get("batch_size") or sizes[r["batch"]]))
        e["source"] = e["source"] or made.get(id(value))
    out = {}
    for name, e in logged.items():
        if e["object"] is not None:
            value, how = _epoch_truth(e["object"], calls.get(id(e["object"]), (None, []))[1]), "compute"
        elif e["values"]:
            value = sum(v * w for v, w in zip(e["values"], e["weights"])) / sum(e["weights"])
            how = "mean"
        else:
            continue
        src = e["source"]
        truth = _epoch_truth(src, calls[id(src)][1]) if src is not None and id(src) in calls else None
        out[name] = {"value": value, "how": how, "truth": truth, "line": e["line"], "batches": len(e["values"]),
                     "metric": type(src).__name__ if src is not None else None}
    correct = int((data["pred"] == data["y"]).sum())
    return {"error": None, "logged": out, "fraction_correct": correct / N_SAMPLES, "batches": len(sizes),
            "line": job.get("line")}


def _Planted(torch, classes, binary):
    """A module standing for a model attribute the step calls (`self.model(x)`)."""

    class Planted(torch.nn.Module):
        def forward(self, x, *args, **kwargs):
            return planted_outputs(torch, x, classes, binary)

    return Planted()


def run_average(torch, job: dict, code: str, seed: int) -> dict:
    """Build the flagged metric and score the whole stand-in set with it, against the
    fraction of correct predictions."""
    _torchmetrics()
    classes = job["classes"]
    ns: dict = {"__name__": "__evallint_replay__", "__builtins__": __builtins__}
    exec_imports(ns, job["imports"])
    data = make_data(torch, classes, seed)
    ns.update({"__preds__": planted_outputs(torch, data["x"], classes, False), "__target__": data["y"]})
    ns.update({name: classes for name in job.get("class_names", ())})
    value = eval(compile(code, "<replay-metric>", "eval"), ns)
    if hasattr(value, "update") and hasattr(value, "compute"):
        value.update(ns["__preds__"], ns["__target__"])
        value = value.compute()
    correct = int((data["pred"] == data["y"]).sum())
    return {"error": None, "value": _scalar(torch, value), "fraction_correct": correct / N_SAMPLES,
            "classes": classes}
