"""The child process of `evallint replay`: runs cut regions against stand-ins.

Run as a script (`python -I harness.py`), never imported by the linter. Reads the jobs
as JSON on stdin and writes one result line per job on stdout, each prefixed with
MARK. Each job gets a time limit; the network is disabled; only the cut regions run
(and, for the probes that need them, the file's class and function definitions and
literal constants), never the user's module as a whole.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import sys
import time
import traceback
import warnings

MARK = "@@evallint-replay "


def _emit(obj: dict) -> None:
    sys.__stdout__.write(MARK + json.dumps(obj) + "\n")
    sys.__stdout__.flush()


def _no_network() -> None:
    class _Blocked(socket.socket):
        def __init__(self, *args, **kwargs):
            raise OSError("network access is disabled during evallint replay")

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled during evallint replay")

    socket.socket = _Blocked  # type: ignore[misc]
    socket.create_connection = refuse  # type: ignore[assignment]
    socket.getaddrinfo = refuse  # type: ignore[assignment]


class _Timeout(BaseException):
    """Raised by the alarm; a BaseException so that user `except Exception` won't eat it."""


def _alarm(signum, frame):
    raise _Timeout()


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, _Timeout):
        return "the region ran past its time limit"
    line = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {line[0] if line else ''}".strip().rstrip(":")


def _number(value):
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return float(value.detach().float().item()) if value.numel() == 1 else None
    except Exception:  # noqa: BLE001 - not a scalar
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return float(value.item())
        except Exception:  # noqa: BLE001
            return None
    return None


def _region_line(exc: BaseException, code: str):
    """The region's statement that raised, as text."""
    tb, lineno = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<replay-region>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    lines = code.splitlines()
    return lines[lineno - 1].strip() if lineno and lineno <= len(lines) else None


def _holds_graph(torch, value) -> bool:
    """Does the value keep an autograd graph alive (a tensor with a grad_fn)?"""
    return isinstance(value, torch.Tensor) and value.grad_fn is not None


def _namespace(imports: list[str], bindings: dict) -> tuple[dict, list[str]]:
    ns: dict = {"__name__": "__evallint_replay__", "__builtins__": __builtins__}
    missing: list[str] = []
    for line in imports:
        try:
            exec(compile(line, "<replay-imports>", "exec"), ns)
        except Exception as exc:  # noqa: BLE001 - a module we cannot import: say which
            missing.append(f"{line} ({_error_text(exc)})")
    ns.update(bindings)
    return ns, missing


def _capped_range(cap: int):
    """`range` for regions that train: a few epochs show what every epoch does."""
    def capped(*args):
        return range(*args)[:cap]

    return capped


def _run_region(torch, job: dict, code: str, device, seed: int, limit: float) -> dict:
    from evallint.replay import standins

    torch.manual_seed(seed)  # dropout masks: the same sequence for both versions
    runs = []
    for _ in range(2):  # two passes over the same data: do they agree?
        bindings, model = standins.build(torch, job["world"], job["roles"], device, seed,
                                         job.get("model_mode", "train"), job.get("self_attrs"))
        bindings.update(job.get("literals") or {})
        ns, missing = _namespace(job["imports"], bindings)
        if job.get("max_iterations"):
            ns["range"] = _capped_range(job["max_iterations"])
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        out, err = io.StringIO(), io.StringIO()
        error = error_line = None
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                exec(compile(code, "<replay-region>", "exec"), ns)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a reason
            error = _error_text(exc)
            error_line = _region_line(exc, code)
            if isinstance(exc, NameError) and missing:
                error += f"; could not import: {missing[0]}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        sinks = []
        for expr in job["sinks"]:
            try:
                sinks.append(_number(eval(expr, ns)))
            except BaseException:  # noqa: BLE001 - a sink not computed: no value
                sinks.append(None)
        graphs = [_holds_graph(torch, ns.get(n)) for n in job.get("graph_names", ())]
        changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
        calls = model.calls
        runs.append({
            "error": error, "error_line": error_line, "sinks": sinks, "graphs": graphs, "printed": out.getvalue()[-2000:],
            "forward_calls": len(calls),
            "training": any(c["training"] for c in calls),
            "requires_grad": any(c["requires_grad"] for c in calls),
            "state_changed": changed,
            "train_steps": sum(1 for c in calls if c["backward"]),
            "train_steps_in_eval_mode": sum(1 for c in calls if c["backward"] and not c["training"]),
            "_outs": [c["out"] for c in calls],
        })
    a, b = runs[0].pop("_outs"), runs[1].pop("_outs")
    diff = None
    if a and len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b)):
        diff = max(float((x.float() - y.float()).abs().max()) if x.numel() else 0.0 for x, y in zip(a, b))
    return {"runs": runs, "max_diff": diff}


def _run_datasets(torch, job: dict, code: str, limit: float) -> dict:
    from evallint.runtime.overlap import overlap

    from evallint.replay import vision

    ns, missing = _namespace(job["imports"], {"__evallint_keyed__": vision.keyed(torch)})
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(code, "<replay-datasets>", "exec"), ns)
            report = overlap(ns["__train__"], ns["__test__"], max_items=job.get("max_items", 5000))
    except BaseException as exc:  # noqa: BLE001
        error = _error_text(exc)
        if missing:
            error += f"; could not import: {missing[0]}"
        return {"error": error}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return {"error": None, "keyed": bool(job.get("keyed")), "fraction": report.fraction, "n_found": report.n_found, "n_test": report.n_test,
            "n_train": report.n_train, "examples": [list(e) for e in report.examples[:3]]}


def _run_definitions(torch, job: dict, code: str, seed: int, limit: float) -> dict:
    """Jobs that run the file's own definitions: a LightningModule's steps, a metric's
    constructor, an nn.Module's forward (metrics_child.py, modules.py)."""
    from evallint.replay import metrics_child, modules_child

    run = {"logged": metrics_child.run_logged, "average": metrics_child.run_average,
           "module": modules_child.run_module}[job["kind"]]
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return run(torch, job, code, seed)
    except metrics_child.NeedsTorchmetrics as exc:
        return {"error": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a reason
        return {"error": _error_text(exc)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _builds_optimizer(job: dict) -> bool:
    # A region runs top to bottom; other jobs' definitions (a LightningModule's
    # `configure_optimizers`) are not all called.
    return "optimizer" in (job.get("roles") or {}).values() or job["kind"] == "region" and any(
        "optim" in code for code in job["versions"].values() if code)


def _uses_torchmetrics(job: dict) -> bool:
    return job["kind"] in ("logged", "average") or "torchmetrics" in " ".join(job.get("imports") or ()) \
        or any(isinstance(r, dict) and "construct" in r for r in (job.get("self_attrs") or {}).values())


def _warm_up(torch, jobs: list[dict]) -> None:
    """What torch and torchmetrics import on first use, imported once per child before the
    jobs (start-up, like torch's own import), not inside the first finding that needs it:
    an optimizer's first method call imports torch._dynamo (about a second)."""
    if any(_builds_optimizer(job) for job in jobs):
        with contextlib.redirect_stderr(io.StringIO()):
            import torch._dynamo  # noqa: F401
    if any(_uses_torchmetrics(job) for job in jobs):
        from evallint.replay import metrics_child

        try:
            metrics_child._torchmetrics()
        except metrics_child.NeedsTorchmetrics:
            pass  # the jobs that need it say so


def main() -> int:
    # The package root, so that `evallint` imports even without an install.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    warnings.filterwarnings("ignore")
    # torch first: the parent starts the child before it lints, and sends the jobs after.
    with contextlib.redirect_stderr(io.StringIO()):  # torch's import-time chatter
        import torch
    text = sys.stdin.read()
    if not text.strip():  # the parent found nothing to run
        return 0
    request = json.loads(text)
    want = request["device"]
    if want == "cuda" and not torch.cuda.is_available():
        _emit({"fatal": "cuda-unavailable", "torch": torch.__version__})
        return 0
    name = "cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available()) else "cpu"
    device = torch.device(name)
    label = f"cuda ({torch.cuda.get_device_name(0)})" if name == "cuda" else "cpu"
    _emit({"device": label, "torch": torch.__version__})
    _no_network()
    signal.signal(signal.SIGALRM, _alarm)
    from evallint.replay import standins, vision

    vision.install(torch)  # never download or read a dataset

    seed, limit = request["seed"], request["time_limit"]
    # The stand-ins are tiny (batches of 64 rows): one thread. Intra-op threads only add
    # their wake-ups and barriers (milliseconds per op on a busy machine, 50x the op).
    torch.set_num_threads(1)
    _warm_up(torch, request["jobs"])
    for job in request["jobs"]:
        result: dict = {"id": job["id"], "versions": {}}
        started = time.perf_counter()
        try:
            for version, code in job["versions"].items():
                if code is None:
                    continue
                if job["kind"] == "region":
                    result["versions"][version] = _run_region(torch, job, code, device, seed, limit)
                elif job["kind"] in ("logged", "average", "module"):
                    result["versions"][version] = _run_definitions(torch, job, code, seed, limit)
                else:
                    result["versions"][version] = _run_datasets(torch, job, code, limit)
            if job["kind"] == "region":
                result["truth"] = standins.ground_truth(torch, job["world"], device, seed)
        except BaseException as exc:  # noqa: BLE001 - never lose the other jobs
            result["error"] = _error_text(exc)
            result["trace"] = traceback.format_exc(limit=3)[-800:]
        result["seconds"] = round(time.perf_counter() - started, 3)
        _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
