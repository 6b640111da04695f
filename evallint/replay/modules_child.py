"""The child side of the module probe (modules.py): build the file's own `nn.Module`,
put it in eval mode and run it twice on one input that fits its first layer.
Imported only inside the child; torch is passed in.
"""
from __future__ import annotations

_BATCH = 8


def _candidates(torch, model) -> list:
    """Inputs that fit the model's first layer, then a few generic shapes."""
    nn = torch.nn
    out = []
    for m in model.modules():
        if isinstance(m, nn.Linear):  # a feature vector, or a sequence of them (attention)
            out += [torch.randn(_BATCH, m.in_features), torch.randn(_BATCH, 12, m.in_features)]
        elif isinstance(m, nn.Conv1d):
            out.append(torch.randn(_BATCH, m.in_channels, 32))
        elif isinstance(m, nn.Conv2d):
            out += [torch.randn(_BATCH, m.in_channels, s, s) for s in (32, 28, 64, 96, 224)]
        elif isinstance(m, nn.Conv3d):
            out.append(torch.randn(2, m.in_channels, 8, 16, 16))
        elif isinstance(m, nn.Embedding):
            out.append(torch.randint(0, m.num_embeddings, (_BATCH, 12)))
        elif isinstance(m, (nn.LSTM, nn.GRU, nn.RNN)):
            out.append(torch.randn(_BATCH, 12, m.input_size))
        else:
            continue
        break
    out += [torch.randn(_BATCH, 16), torch.randn(2, 4, 12, 16), torch.randn(_BATCH, 3, 32, 32)]
    return out


def _first_tensor(torch, value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            t = _first_tensor(torch, v)
            if t is not None:
                return t
    if isinstance(value, dict):
        for v in value.values():
            t = _first_tensor(torch, v)
            if t is not None:
                return t
    return None


def _forward(torch, model, x, n_inputs: int):
    with torch.no_grad():
        return _first_tensor(torch, model(*([x] * n_inputs)))


def run_module(torch, job: dict, code: str, seed: int) -> dict:
    import inspect

    from .metrics_child import constructor_args, exec_imports

    ns: dict = {"__name__": "__evallint_replay__", "__builtins__": __builtins__}
    exec_imports(ns, job["imports"])
    exec(compile(code, "<replay-module>", "exec"), ns)
    cls = ns[job["class"]]
    torch.manual_seed(seed)
    model = cls(**constructor_args(cls, 10))
    model.eval()
    params = [p for p in list(inspect.signature(model.forward).parameters.values())
              if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    n_inputs = max(1, len(params))
    last = None
    for x in _candidates(torch, model):
        try:
            torch.manual_seed(seed)
            a = _forward(torch, model, x, n_inputs)
            b = _forward(torch, model, x, n_inputs)
        except Exception as exc:  # noqa: BLE001 - an input that does not fit: try the next
            last = exc
            continue
        if a is None or b is None or a.shape != b.shape:
            continue
        diff = float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
        return {"error": None, "max_diff": diff, "input": list(x.shape), "training": model.training}
    raise RuntimeError(f"no input fits `{job['class']}`" + (f" (last: {type(last).__name__}: {last})" if last else ""))
