"""Models: which calls run a model, whether its layers depend on train/eval mode."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from .exprs import dotted, keyword, last_part, literal_value, method_call, number

MODULE_BASES = {"torch.nn.Module", "nn.Module", "Module", "torch.nn.modules.module.Module",
                "pytorch_lightning.LightningModule", "lightning.LightningModule",
                "lightning.pytorch.LightningModule", "pl.LightningModule", "LightningModule",
                "torch.nn.Sequential"}
LIGHTNING_BASES = {"pytorch_lightning.LightningModule", "lightning.LightningModule",
                   "lightning.pytorch.LightningModule", "pl.LightningModule", "LightningModule",
                   "L.LightningModule"}
# Layers whose behaviour differs between train() and eval().
MODE_SENSITIVE = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                  "FeatureAlphaDropout", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
                  "SyncBatchNorm", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
                  "RReLU", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d")
# torch.nn layers known not to depend on the mode (unless given a dropout argument).
_RECURRENT_WITH_DROPOUT = ("LSTM", "GRU", "RNN", "Transformer", "TransformerEncoderLayer",
                           "TransformerDecoderLayer", "MultiheadAttention", "TransformerEncoder",
                           "TransformerDecoder")
# Factories that return pretrained networks (BatchNorm/Dropout inside).
MODEL_FACTORIES_PREFIXES = ("torchvision.models.", "timm.", "transformers.", "torch.hub.load")


def is_module_class(cls, classes, depth=0) -> bool:
    if depth > 5:
        return False
    for base in cls.bases:
        if base in MODULE_BASES or base.endswith(("nn.Module", "LightningModule")):
            return True
        inner = classes.get(last_part(base))
        if inner is not None and inner is not cls and is_module_class(inner, classes, depth + 1):
            return True
    return False


def is_lightning_class(cls, classes, depth=0) -> bool:
    if depth > 5:
        return False
    for base in cls.bases:
        if base in LIGHTNING_BASES or base.endswith("LightningModule"):
            return True
        inner = classes.get(last_part(base))
        if inner is not None and inner is not cls and is_lightning_class(inner, classes, depth + 1):
            return True
    return False


def layer_sensitivity(call: cst.Call, qualify, class_sensitivity) -> Optional[bool]:
    """True: mode-sensitive layer; False: known-insensitive; None: unknown callee.

    `class_sensitivity(name)` resolves classes by their qualified name: in-file ones,
    and those of the checked tree (None when unknown)."""
    name = qualify(call.func) or ""
    short = last_part(name)
    if short in MODE_SENSITIVE and (name.startswith(("torch.nn.", "nn.")) or name == short):
        if short.startswith("InstanceNorm"):
            v = keyword(call, "track_running_stats")
            return bool(v is not None and literal_value(v.value) is True)
        return True
    if name in ("torch.nn.functional.dropout", "torch.nn.functional.dropout2d", "F.dropout"):
        return True
    if short in _RECURRENT_WITH_DROPOUT and name.startswith(("torch.nn.", "nn.")):
        d = keyword(call, "dropout")
        if short.startswith("Transformer") or short == "MultiheadAttention":
            return not (d is not None and number(d.value) == 0)
        return bool(d is not None and (number(d.value) or 0) > 0)
    if name.startswith("torch.nn.") or name.startswith("nn."):
        if short in ("Sequential", "ModuleList", "ModuleDict"):
            return None  # decided by their arguments, which are calls seen separately
        return False
    in_file = class_sensitivity(name or short)
    if in_file is not None:
        return in_file
    if name.startswith(MODEL_FACTORIES_PREFIXES) or ".from_pretrained" in name:
        return True
    return None


def calls_sensitivity(calls, qualify, class_sensitivity) -> Optional[bool]:
    """Combine the layers built by a set of calls: any sensitive -> True; any unknown
    callee that looks like a layer (capitalised) -> None; else False."""
    unknown = False
    for call in calls:
        s = layer_sensitivity(call, qualify, class_sensitivity)
        if s:
            return True
        if s is None:
            name = last_part(qualify(call.func) or dotted(call.func))
            if name[:1].isupper() and name not in ("Sequential", "ModuleList", "ModuleDict", "Parameter"):
                unknown = True
    return None if unknown else False


_CHAINABLE = {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "eval", "train", "requires_grad_"}


def mode_call(node: cst.CSTNode) -> Optional[tuple[str, Optional[bool]]]:
    """`x.eval()` -> (x, False); `x.train()` -> (x, True); `x.train(False)` -> (x, False);
    `x.train(flag)` -> (x, None). Chains count: `x.to(device).eval()` -> (x, False)."""
    mc = method_call(node)
    if mc is None:
        return None
    obj, meth = mc
    while isinstance(obj, cst.Call) and method_call(obj) and method_call(obj)[1] in _CHAINABLE:
        obj = obj.func.value
    key = dotted(obj)
    if key is None:
        return None
    if meth == "eval" and not node.args:
        return key, False
    if meth == "train":
        if not node.args:
            return key, True
        v = literal_value(node.args[0].value)
        return key, (v if isinstance(v, bool) else None)
    return None
