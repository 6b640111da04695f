"""Lightning: LightningModule classes, the stage each of their hooks runs in, their
`self.log`/`self.log_dict` calls, and the Trainers (devices, strategy) that run them.

Stages are "train", "val", "test" and "predict". A helper method takes the stages of
the hooks that call it (`self._shared_step(...)`). Trainers are linked to a module
class through `trainer.fit(model)` / `validate` / `test` / `predict`; what is not
visible in the file is unknown, and unknown means quiet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import libcst as cst

from . import flow, models
from .exprs import dotted, keyword, last_part, literal_value, method_call
from .index import Stmt
from .scopes import LIGHTNING_EVAL_STEPS, ClassInfo, FunctionInfo

STEP_HOOKS = {"training_step": "train", "validation_step": "val", "test_step": "test", "predict_step": "predict",
              "training_step_end": "train", "validation_step_end": "val", "test_step_end": "test",
              "on_train_batch_end": "train", "on_validation_batch_end": "val", "on_test_batch_end": "test"}
EPOCH_END_HOOKS = {"on_train_epoch_end": "train", "on_validation_epoch_end": "val", "on_test_epoch_end": "test",
                   "on_predict_epoch_end": "predict", "training_epoch_end": "train",
                   "validation_epoch_end": "val", "test_epoch_end": "test"}
EPOCH_START_HOOKS = {"on_train_epoch_start": "train", "on_validation_epoch_start": "val",
                     "on_test_epoch_start": "test", "on_predict_epoch_start": "predict"}
# Every evaluation hook the shared classifier knows is a step or an epoch-end hook here.
assert LIGHTNING_EVAL_STEPS <= set(STEP_HOOKS) | set(EPOCH_END_HOOKS)

TRAINER_NAMES = {"lightning.Trainer", "lightning.pytorch.Trainer", "pytorch_lightning.Trainer",
                 "lightning.pytorch.trainer.Trainer", "pytorch_lightning.trainer.Trainer",
                 "lightning.pytorch.trainer.trainer.Trainer", "pytorch_lightning.trainer.trainer.Trainer"}
# What each Trainer entry point runs.
TRAINER_RUNS = {"fit": frozenset({"train", "val"}), "validate": frozenset({"val"}),
                "test": frozenset({"test"}), "predict": frozenset({"predict"})}
_DISTRIBUTED_STRATEGY_WORDS = ("ddp", "fsdp", "deepspeed", "horovod", "hpu_parallel", "xla")


@dataclass(eq=False)
class LogCall:
    call: cst.Call
    stmt: Stmt
    method: FunctionInfo
    cls: ClassInfo
    kind: str                                  # "log" | "log_dict"
    value: Optional[cst.BaseExpression]        # the logged value (log) or dictionary (log_dict)

    def flag(self, name: str):
        """A keyword's literal value; None when absent; `...` when not a literal."""
        arg = keyword(self.call, name)
        if arg is None:
            return None if not any(a.star for a in self.call.args) else ...
        v = literal_value(arg.value)
        return v if isinstance(v, bool) else ...


@dataclass(eq=False)
class TrainerInfo:
    call: cst.Call
    stmt: Stmt
    multi_device: Optional[bool]                # True: several processes; None: cannot tell
    runs: list[tuple[frozenset, Optional[str]]] = field(default_factory=list)  # (stages, module class or None)


class LightningFacts:
    def __init__(self, facts) -> None:
        self.facts = facts

    # Classes and hooks ----------------------------------------------------------
    def module_classes(self) -> list[ClassInfo]:
        classes = self.facts.classes
        return [c for c in classes.values() if models.is_lightning_class(c, classes)]

    def class_of(self, function: FunctionInfo) -> Optional[ClassInfo]:
        if function is None or function.class_stmt is None:
            return None
        cls = self.facts.classes.get(function.class_stmt.node.name.value)
        if cls is None or cls.stmt is not function.class_stmt:
            return None
        return cls if models.is_lightning_class(cls, self.facts.classes) else None

    def class_of_name(self, name: str) -> Optional[ClassInfo]:
        cls = self.facts.classes.get(name)
        return cls if cls is not None and models.is_lightning_class(cls, self.facts.classes) else None

    def hook_stage(self, name: str) -> Optional[str]:
        return STEP_HOOKS.get(name) or EPOCH_END_HOOKS.get(name) or EPOCH_START_HOOKS.get(name)

    def stages(self, function: FunctionInfo, _depth: int = 0, _seen=None) -> frozenset:
        """The stages a method of a LightningModule runs in: its hook's, or for a
        helper the union over the hooks that call it."""
        stage = self.hook_stage(function.name)
        if stage is not None:
            return frozenset({stage})
        if _depth > 3 or not function.is_method:
            return frozenset()
        seen = _seen or set()
        if id(function) in seen:
            return frozenset()
        seen.add(id(function))
        out: set[str] = set()
        for site in self.facts.call_sites(function):
            func = site.call.func
            if not (isinstance(func, cst.Attribute) and dotted(func.value) == "self"):
                continue
            caller = self.facts.function_of(site.stmt)
            if caller is not None and caller.is_method and self.class_of(caller) is not None:
                out |= self.stages(caller, _depth + 1, seen)
        return frozenset(out)

    def hook_kind(self, function: FunctionInfo) -> Optional[str]:
        """"step" or "epoch_end" for hooks, None for other methods."""
        if function.name in STEP_HOOKS:
            return "step"
        if function.name in EPOCH_END_HOOKS:
            return "epoch_end"
        return None

    def runs_repeatedly(self, function: FunctionInfo) -> bool:
        """A step or epoch hook, or a helper that such a hook calls."""
        if function.name in STEP_HOOKS or function.name in EPOCH_END_HOOKS or function.name in EPOCH_START_HOOKS:
            return True
        return bool(self.stages(function))

    # Logging ----------------------------------------------------------------------
    @cached_property
    def log_calls(self) -> list[LogCall]:
        out = []
        for call, stmt in self.facts.index.calls:
            name = dotted(call.func)
            if name not in ("self.log", "self.log_dict"):
                continue
            method = self.facts.function_of(stmt)
            cls = self.class_of(method) if method is not None else None
            if cls is None:
                continue
            kind = "log" if name == "self.log" else "log_dict"
            value = _arg(call, 1, "value") if kind == "log" else _arg(call, 0, "dictionary")
            out.append(LogCall(call, stmt, method, cls, kind, value))
        return out

    def on_epoch(self, log: LogCall, stage: str) -> Optional[bool]:
        """Does this log aggregate over the epoch when it runs in `stage`? Lightning's
        defaults: on_epoch=False in training steps, True in evaluation steps and in
        epoch-end hooks."""
        explicit = log.flag("on_epoch")
        if explicit is ...:
            return None
        if explicit is not None:
            return explicit
        if log.method.name in EPOCH_END_HOOKS:
            return True
        return stage != "train"

    # Trainers -----------------------------------------------------------------------
    @cached_property
    def trainers(self) -> list[TrainerInfo]:
        facts = self.facts
        out = []
        by_name: dict[str, TrainerInfo] = {}
        for call, stmt in facts.index.calls:
            qualified = facts.qualify(call.func) or ""
            if qualified not in TRAINER_NAMES and not (qualified.endswith(".Trainer") and
                                                       qualified.split(".")[0] in ("lightning", "pytorch_lightning")):
                continue
            info = TrainerInfo(call, stmt, multi_device(call, facts.qualify))
            out.append(info)
            node = stmt.node
            if isinstance(node, cst.Assign) and len(node.targets) == 1 and node.value is call:
                key = dotted(node.targets[0].target)
                if key is not None:
                    by_name[key] = info
        if out:
            for call, stmt in facts.index.calls:
                mc = method_call(call)
                if mc is None or mc[1] not in TRAINER_RUNS:
                    continue
                target = mc[0]
                info = next((t for t in out if t.call is target), None) if isinstance(target, cst.Call) \
                    else by_name.get(dotted(target) or "")
                if info is None:
                    continue
                model = _arg(call, 0, "model")
                info.runs.append((TRAINER_RUNS[mc[1]], self._model_class(model, stmt)))
        return out

    def _model_class(self, expr, at: Stmt) -> Optional[str]:
        """The class of the model a Trainer runs: an in-file class name, "" for a class
        built elsewhere (not this file's modules), None when it cannot be told."""
        if isinstance(expr, cst.Name):
            expr = flow.assigned_value(self.facts.index, expr.value, at)
        while isinstance(expr, cst.Call):
            mc = method_call(expr)
            if mc is not None and mc[1] in ("load_from_checkpoint", "to", "cuda"):
                expr = mc[0]
                continue
            name = last_part(dotted(expr.func) or "")
            if name in self.facts.classes:
                return name
            return "" if name[:1].isupper() else None
        if isinstance(expr, (cst.Name, cst.Attribute)):
            name = last_part(dotted(expr) or "")
            return name if name in self.facts.classes else None
        return None

    def distributed_stages(self, cls: ClassInfo) -> frozenset:
        """The stages of this module that a multi-device Trainer in the file runs."""
        out: set[str] = set()
        for trainer in self.trainers:
            if trainer.multi_device is not True:
                continue
            for stages, model in trainer.runs:
                if model is None or (model and self._is_same_or_subclass(model, cls)):
                    out |= stages
        return frozenset(out)

    def _is_same_or_subclass(self, name: str, cls: ClassInfo) -> bool:
        classes = self.facts.classes
        seen = set()
        todo = [name]
        while todo:
            n = todo.pop()
            if n == cls.name:
                return True
            if n in seen or n not in classes:
                continue
            seen.add(n)
            todo.extend(last_part(b) for b in classes[n].bases)
        return False


def _arg(call: cst.Call, index: int, name: str):
    kw = keyword(call, name)
    if kw is not None:
        return kw.value
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return positional[index].value if index < len(positional) else None


def _device_count(expr) -> Optional[int]:
    v = literal_value(expr)
    if isinstance(v, float) and v.is_integer():
        return int(v) if v >= 0 else None  # -1: "all available", not visible
    if isinstance(v, str):
        text = v.strip()
        if text.isdigit():
            return int(text)
        parts = [p for p in text.split(",") if p.strip()]
        if "," in text and all(p.strip().isdigit() for p in parts):
            return len(parts)
        return None
    if isinstance(expr, (cst.List, cst.Tuple)):
        return len(expr.elements)
    return None


def multi_device(call: cst.Call, qualify) -> Optional[bool]:
    """Does this Trainer run several processes? From literal devices/gpus/num_nodes and
    a distributed strategy; None when it cannot be told."""
    if _strategy_text(call) in ("dp", "single_device", "single_tpu", "single_xla"):
        return None  # one process (DataParallel scatters inside it)
    devices = None
    for name in ("devices", "gpus", "tpu_cores"):
        kw = keyword(call, name)
        if kw is not None:
            devices = _device_count(kw.value)
            if devices is None:
                return None if not _distributed_strategy(call, qualify) else True
            break
    nodes_kw = keyword(call, "num_nodes")
    nodes = _device_count(nodes_kw.value) if nodes_kw is not None else 1
    if nodes is not None and nodes > 1:
        return True
    if devices is not None and devices > 1:
        return True
    if _distributed_strategy(call, qualify) and devices != 1:
        return True
    if devices == 1 and nodes == 1:
        return False
    return None


def _strategy_text(call: cst.Call) -> Optional[str]:
    kw = keyword(call, "strategy") or keyword(call, "accelerator")
    v = literal_value(kw.value) if kw is not None else None
    return v.lower() if isinstance(v, str) else None


def _distributed_strategy(call: cst.Call, qualify) -> bool:
    kw = keyword(call, "strategy")
    if kw is None:  # Lightning < 1.5 named the strategy `accelerator` ("ddp")
        kw = keyword(call, "accelerator")
        if kw is None or not (isinstance(literal_value(kw.value), str) and "ddp" in literal_value(kw.value)):
            return False
    v = literal_value(kw.value)
    if isinstance(v, str):
        return any(w in v.lower() for w in _DISTRIBUTED_STRATEGY_WORDS)
    if isinstance(kw.value, cst.Call):
        name = last_part(qualify(kw.value.func) or dotted(kw.value.func) or "")
        return name.endswith("Strategy") and any(w in name.lower() for w in _DISTRIBUTED_STRATEGY_WORDS)
    return False
