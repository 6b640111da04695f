"""What a PyTorch model's output is: the activation its `forward` (or its
`nn.Sequential`) ends in, and the size of its last linear layer.

`forward` is read return by return: `F.softmax(x, dim=1)`, `x.sigmoid()`,
`self.softmax(x)` with `self.softmax = nn.Softmax(dim=1)`, `self.head(x)` with an
`nn.Sequential` or a class of the file, a name bound to any of these. Returns that
disagree (softmax at inference, logits in training) make the answer unknown.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Optional

import libcst as cst

from . import flow, models
from .exprs import argument, dotted, last_part, literal_value, method_call, positional, value_assigned
from .index import Stmt
from .scopes import argument_for

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts

# Activations that end a model, by the spellings of torch, torch.nn.functional and nn.
_FUNCTIONS = {
    "torch.softmax": "softmax", "torch.nn.functional.softmax": "softmax", "torch.special.softmax": "softmax",
    "torch.log_softmax": "log_softmax", "torch.nn.functional.log_softmax": "log_softmax",
    "torch.special.log_softmax": "log_softmax",
    "torch.sigmoid": "sigmoid", "torch.nn.functional.sigmoid": "sigmoid", "torch.special.expit": "sigmoid",
}
_TENSOR_METHODS = {"softmax": "softmax", "log_softmax": "log_softmax", "sigmoid": "sigmoid"}
_LAYERS = {"Softmax": "softmax", "LogSoftmax": "log_softmax", "Sigmoid": "sigmoid"}
# Element-wise layers after the last Linear keep its (N, out_features) shape.
_ELEMENTWISE = {"ReLU", "LeakyReLU", "Tanh", "ELU", "GELU", "SiLU", "Hardtanh", "Softplus", "Identity",
                "Dropout", "AlphaDropout", "ReLU6", "PReLU", "Mish", "Hardsigmoid", "Hardswish"}
# Tensor methods that change neither the activation nor the shape.
_SAME = {"to", "cuda", "cpu", "float", "double", "half", "contiguous", "clone", "detach", "type_as"}
# The attribute that holds the last module of torchvision / timm classifiers.
_HEADS = ("fc", "classifier", "head", "heads")
# Tensor methods that keep the activation and change the shape.
_RESHAPES = {"squeeze", "view", "reshape", "flatten", "ravel", "unsqueeze"}


@dataclass(frozen=True)
class ModelEnd:
    activation: str                 # "softmax" | "log_softmax" | "sigmoid" | "none" | other layer names
    node: cst.CSTNode = field(repr=False)  # where the final activation (or the last layer) is written
    out_features: Optional[int]     # the last nn.Linear's out_features, when the shape is kept after it


class OutputFacts:
    def __init__(self, facts: "ModuleFacts") -> None:
        self.facts = facts
        self.index = facts.index

    # Layers and nn.Sequential ------------------------------------------------------
    def _torch_nn(self, call: cst.Call) -> Optional[str]:
        q = self.facts.qualify(call.func) or ""
        if q.startswith("nn."):
            q = "torch." + q
        return last_part(q) if q.startswith("torch.nn.") else None

    def layer_end(self, call: cst.Call, _depth: int = 0) -> Optional[ModelEnd]:
        """The end of a module construction: a layer, an nn.Sequential, an in-file class."""
        if _depth > 4:
            return None
        short = self._torch_nn(call)
        if short in _LAYERS:
            return ModelEnd(_LAYERS[short], call, None)
        if short == "Linear":
            out = literal_value(argument(call, 1, "out_features") or cst.Name("_"))
            return ModelEnd("none", call, int(out) if isinstance(out, float) and out == int(out) else None)
        if short == "Sequential":
            return self._sequence_end([a.value for a in call.args if a.keyword is None and not a.star], _depth)
        if short in _ELEMENTWISE:
            return ModelEnd(short.lower(), call, None)
        name = dotted(call.func)
        if short is None and name in self.facts.classes:
            return self.class_end(name, _depth + 1)
        return None

    def _sequence_end(self, layers: list, depth: int) -> Optional[ModelEnd]:
        """`nn.Sequential(a, b, c)`: the activation of its last layer, the size of the
        last layer that is not element-wise."""
        if not layers or not isinstance(layers[-1], cst.Call):
            return None
        below = None
        for layer in reversed(layers):
            if not isinstance(layer, cst.Call):
                return None
            short = self._torch_nn(layer)
            if short in _LAYERS or short in _ELEMENTWISE:
                continue
            below = self.layer_end(layer, depth + 1)
            break
        last = layers[-1]
        short = self._torch_nn(last)
        if short in _LAYERS or short in _ELEMENTWISE:
            name = _LAYERS.get(short) or short.lower()
            return ModelEnd(name, last, below.out_features if below is not None else None)
        return below

    # Classes and forward -----------------------------------------------------------
    def class_end(self, class_name: str, _depth: int = 0) -> Optional[ModelEnd]:
        return self._class_ends.get(class_name) if _depth == 0 else self._compute_class_end(class_name, _depth)

    @cached_property
    def _class_ends(self) -> dict[str, Optional[ModelEnd]]:
        return {name: self._compute_class_end(name, 0) for name in self.facts.classes}

    def _compute_class_end(self, class_name: str, depth: int) -> Optional[ModelEnd]:
        cls = self.facts.classes.get(class_name)
        if cls is None or depth > 4 or not models.is_module_class(cls, self.facts.classes):
            return None
        forward = cls.methods.get("forward")
        if forward is None:
            for base in cls.bases:
                if last_part(base) in self.facts.classes and last_part(base) != class_name:
                    return self._compute_class_end(last_part(base), depth + 1)
            return None
        returns = [s for s in self.index.function_body(forward.stmt) if isinstance(s.node, cst.Return)]
        if not returns or any(r.node.value is None for r in returns):
            return None
        ends = [self.expr_end(r.node.value, r, cls, depth) for r in returns]
        if any(e is None for e in ends) or len({(e.activation, e.out_features) for e in ends}) != 1:
            return None
        return ends[0]

    def _attribute_module(self, cls, attr: str) -> Optional[cst.Call]:
        """`self.attr = nn.Softmax(dim=1)` in the class (assigned once)."""
        found = None
        for s in self.index.statements[cls.stmt.order + 1: cls.stmt.end_order + 1]:
            node = s.node
            if isinstance(node, (cst.Assign, cst.AnnAssign)):
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                if any(dotted(t) == f"self.{attr}" for t in targets):
                    if found is not None or not isinstance(node.value, cst.Call):
                        return None
                    found = node.value
        return found

    def expr_end(self, expr: cst.BaseExpression, at: Stmt, cls=None, depth: int = 0) -> Optional[ModelEnd]:
        """The end of a tensor expression inside `forward`."""
        for _ in range(12):
            if isinstance(expr, cst.Name):
                s = flow.last_assignment_before(self.index, expr.value, at)
                value = value_assigned(s.node, expr.value) if s is not None else None
                if value is None:
                    return None
                expr, at = value, s
                continue
            if not isinstance(expr, cst.Call):
                return None
            q = self.facts.qualify(expr.func) or ""
            if q.startswith("F."):
                q = "torch.nn.functional." + q[2:]
            if q in _FUNCTIONS:
                return ModelEnd(_FUNCTIONS[q], expr, self._features_below(_first(expr), at, cls, depth))
            mc = method_call(expr)
            on_self = mc is not None and dotted(mc[0]) == "self"  # a submodule: self.softmax(x)
            if mc is not None and mc[1] in _TENSOR_METHODS and not q.startswith("torch.") and not on_self:
                return ModelEnd(_TENSOR_METHODS[mc[1]], expr, self._features_below(mc[0], at, cls, depth))
            if mc is not None and mc[1] in _SAME:
                expr = mc[0]
                continue
            if mc is not None and mc[1] in _RESHAPES:
                inner = self.expr_end(mc[0], at, cls, depth + 1)
                return ModelEnd(inner.activation, inner.node, None) if inner is not None else None
            func = dotted(expr.func)
            if func is not None and func.startswith("self.") and func.count(".") == 1 and cls is not None:
                built = self._attribute_module(cls, func[5:])
                if built is None:
                    return None
                end = self.layer_end(built, depth + 1)
                if end is not None and self._torch_nn(built) in _LAYERS:
                    # a bare activation module: the place to point at is its call in forward
                    inner = positional(expr, 0)
                    return ModelEnd(end.activation, expr,
                                    self._features_below(inner.value if inner else None, at, cls, depth))
                return end
            return None
        return None

    def _features_below(self, expr, at, cls, depth) -> Optional[int]:
        if expr is None:
            return None
        below = self.expr_end(expr, at, cls, depth + 1)
        return below.out_features if below is not None else None

    # Model variables --------------------------------------------------------------
    def model_end(self, key: str, at: Stmt, _depth: int = 0) -> Optional[ModelEnd]:
        """The end of the model named `key` (`model`, `self`, `self.net`) where `at` runs."""
        function = self.facts.function_of(at)
        if key == "self" or key.startswith("self."):
            if function is None or function.class_stmt is None:
                return None
            cls_name = function.class_stmt.node.name.value
            if key == "self":
                return self.class_end(cls_name)
            if key.count(".") != 1:
                return None
            built = self._attribute_module(self.facts.classes[cls_name], key[5:])
            return self.layer_end(built) if built is not None else None
        call = self.facts.model_binding_call(key, at)
        if call is not None:
            head = self._replaced_head(key, call, at)
            return head if head is not None else self.layer_end(call)
        built = self._built_by_function(key, at)
        if built is not None:
            return built
        if function is not None and key in function.params and _depth < 3:
            ends = []
            for site in self.facts.call_sites(function):
                arg = argument_for(function, key, site.call)
                ends.append(self.model_end(arg.value, site.stmt, _depth + 1) if isinstance(arg, cst.Name) else None)
            if ends and all(e is not None for e in ends) and len({(e.activation, e.out_features) for e in ends}) == 1:
                return ends[0]
        return None

    def activation_reaching(self, expr: Optional[cst.BaseExpression], at: Stmt) -> Optional[tuple[ModelEnd, str]]:
        """The activation an expression carries: applied explicitly (`F.softmax(out, 1)`,
        `probs = out.sigmoid()`), or the one the model it comes from ends in. The second
        item says where it comes from (`model`, or the code of the explicit call)."""
        for _ in range(6):
            if isinstance(expr, cst.Name):
                s = flow.last_assignment_before(self.index, expr.value, at)
                value = value_assigned(s.node, expr.value) if s is not None else None
                if value is None:
                    return None
                expr, at = value, s
                continue
            if not isinstance(expr, cst.Call):
                return None
            q = self.facts.qualify(expr.func) or ""
            if q.startswith("F."):
                q = "torch.nn.functional." + q[2:]
            mc = method_call(expr)
            explicit = _FUNCTIONS.get(q)
            if explicit is None and mc is not None and mc[1] in _TENSOR_METHODS and not q.startswith("torch.") \
                    and dotted(mc[0]) != "self":
                explicit = _TENSOR_METHODS[mc[1]]
            if explicit is not None:
                return ModelEnd(explicit, expr, None), "explicit"
            if mc is not None and (mc[1] in _SAME or mc[1] in _RESHAPES) and dotted(mc[0]) != "self":
                expr = mc[0]
                continue
            return self.value_end(expr, at)
        return None

    def _replaced_head(self, key: str, built: cst.Call, at: Stmt) -> Optional[ModelEnd]:
        """`model = models.resnet50(...)` then `model.fc = nn.Sequential(...)`: a pretrained
        network whose last module (`fc`, `classifier`, `head`) was replaced before `at`."""
        callee = self.facts.qualify(built.func) or ""
        if not callee.startswith(("torchvision.models.", "timm.create_model")):
            return None
        replaced = None
        for s in flow.scope_statements(self.index, at):
            if s.order >= at.order:
                break
            node = s.node
            if isinstance(node, cst.Assign) and len(node.targets) == 1 \
                    and dotted(node.targets[0].target) in {f"{key}.{a}" for a in _HEADS}:
                replaced = node.value
        return self.layer_end(replaced) if isinstance(replaced, cst.Call) else None

    def _built_by_function(self, key: str, at: Stmt) -> Optional[ModelEnd]:
        """`model = build_model(...)` with an in-file function that returns a module."""
        value = flow.assigned_value(self.index, key, at) if "." not in key else None
        while isinstance(value, cst.Call) and method_call(value) and method_call(value)[1] in _SAME:
            value = value.func.value
        if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Name):
            return None
        candidates = [f for f in self.facts.functions.get(value.func.value, []) if not f.is_method]
        if len(candidates) != 1:
            return None
        returns = [s for s in self.index.function_body(candidates[0].stmt) if isinstance(s.node, cst.Return)]
        if len(returns) != 1 or not isinstance(returns[0].node.value, (cst.Call, cst.Name)):
            return None
        returned = returns[0].node.value
        if isinstance(returned, cst.Name):
            return self.model_end(returned.value, returns[0], 3)
        return self.layer_end(returned)

    def value_end(self, expr: Optional[cst.BaseExpression], at: Stmt) -> Optional[tuple[ModelEnd, str]]:
        """If `expr` is a model's output as the model returns it (`model(x)`, a name bound
        to it, moved to a device), its end and the model's name."""
        for _ in range(6):
            if isinstance(expr, cst.Name):
                s = flow.last_assignment_before(self.index, expr.value, at)
                value = value_assigned(s.node, expr.value) if s is not None else None
                if value is None:
                    return None
                expr, at = value, s
                continue
            if not isinstance(expr, cst.Call):
                return None
            mc = method_call(expr)
            if mc is not None and mc[1] in _SAME:
                expr = mc[0]
                continue
            key = "self" if isinstance(expr.func, cst.Name) and expr.func.value == "self" else self.facts.model_key(expr)
            if key is None:
                return None
            end = self.model_end(key, at)
            return (end, key) if end is not None else None
        return None



def _first(call: cst.Call) -> Optional[cst.BaseExpression]:
    arg = positional(call, 0)
    return arg.value if arg is not None else None

