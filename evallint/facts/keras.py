"""Keras models, their output layer and `compile` settings, and data generators.

A model is found where it is built (`Sequential([...])` plus `model.add(...)`, the
functional `Model(inputs, outputs)`, a subclass of `keras.Model` whose `call` returns
a layer) and followed to its `compile(...)`. Every answer may be None (unknown):
a layer we do not know, an activation held in a variable, a loss from a helper.
Rules stay quiet then.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Optional

import libcst as cst

from . import flow
from .exprs import argument, dotted, keyword, last_part, literal_value, method_call, positional, value_assigned
from .index import Stmt
from .walk import walk

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts

KERAS_ROOTS = ("keras.", "tensorflow.keras.", "tf_keras.", "tensorflow.python.keras.")
# Layers that only apply an activation to the layer before them.
_ACTIVATION_LAYERS = {"Softmax": "softmax", "ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu",
                      "PReLU": "prelu", "ThresholdedReLU": "relu"}
# Activation functions applied as calls in a functional or subclassed model.
_ACTIVATION_FUNCTIONS = {"softmax", "sigmoid", "relu", "tanh", "log_softmax", "softplus"}
_CROSSENTROPY_STRINGS = {
    "binary_crossentropy": "binary", "categorical_crossentropy": "categorical",
    "sparse_categorical_crossentropy": "sparse_categorical", "binary_focal_crossentropy": "binary",
}
_CROSSENTROPY_CLASSES = {
    "BinaryCrossentropy": "binary", "CategoricalCrossentropy": "categorical",
    "SparseCategoricalCrossentropy": "sparse_categorical", "BinaryFocalCrossentropy": "binary",
    "CategoricalFocalCrossentropy": "categorical",
}
# Generators and datasets that shuffle unless told not to.
SHUFFLING_SOURCES = {"flow_from_directory", "flow_from_dataframe", "image_dataset_from_directory",
                     "text_dataset_from_directory", "audio_dataset_from_directory"}
_LABEL_ATTRIBUTES = {"classes", "labels"}


def is_keras_name(qualified: Optional[str]) -> bool:
    return bool(qualified) and (qualified.startswith(KERAS_ROOTS) or qualified in ("keras", "tensorflow.keras"))


@dataclass(eq=False)
class KerasOutput:
    """What the model's last layer produces."""

    units: Optional[int]            # None: unknown
    activation: Optional[str]       # "linear", "softmax", "sigmoid", ...; None: unknown
    dense: Optional[cst.Call] = field(repr=False)  # the Dense layer construction that gives the units
    activation_node: Optional[cst.CSTNode] = field(default=None, repr=False)  # where a non-linear activation is set

    @property
    def provably_linear(self) -> bool:
        return self.activation == "linear" and self.dense is not None


@dataclass(eq=False)
class KerasLoss:
    expr: cst.BaseExpression        # the loss as written in compile (string, call, name)
    node: cst.CSTNode               # the node a fix rewrites: the string or the constructor call
    family: Optional[str]           # "binary" | "categorical" | "sparse_categorical" | None (not a crossentropy)
    form: str                       # "string" | "object" | "function"
    from_logits: Optional[bool]     # None: given but not a literal


@dataclass(eq=False)
class KerasCompile:
    call: cst.Call
    stmt: Stmt
    output: Optional[KerasOutput]
    loss: Optional[KerasLoss]
    metrics: list[str] = field(default_factory=list)  # string metrics, lower-case


@dataclass(eq=False)
class KerasSource:
    """A generator or dataset built from files that shuffles by default."""

    name: str
    call: cst.Call
    stmt: Stmt
    method: str
    shuffle: Optional[bool]          # None: not a literal
    shuffle_arg: Optional[cst.Arg]


@dataclass(eq=False)
class ShuffledPrediction:
    """`model.predict(source)` whose result meets labels read from the source in another
    pass (`source.classes`, or a second iteration of a shuffling dataset)."""

    source: KerasSource
    predict: cst.Call
    meeting: Stmt                    # the statement where predictions and labels meet
    labels: str                      # how the labels were read, for the message
    trains_on_source: bool           # the same source is also given to fit()


class KerasFacts:
    def __init__(self, facts: "ModuleFacts") -> None:
        self.facts = facts
        self.index = facts.index

    # Names -----------------------------------------------------------------------
    @cached_property
    def star_imported(self) -> bool:
        """`from keras.layers import *`: bare layer names then stand for Keras."""
        for s in self.facts.statements:
            node = s.node
            if isinstance(node, cst.ImportFrom) and isinstance(node.names, cst.ImportStar) and node.module is not None:
                if is_keras_name((dotted(node.module) or "") + "."):
                    return True
        return False

    @property
    def used(self) -> bool:
        return "keras" in self.facts.frameworks or "tensorflow" in self.facts.frameworks or self.star_imported

    def keras_callee(self, expr: cst.BaseExpression) -> Optional[str]:
        """The short Keras class or function name a callee stands for, else None."""
        q = self.facts.qualify(expr)
        if q is None:
            return None
        if is_keras_name(q):
            return last_part(q)
        if "." not in q and self.star_imported and q not in self.facts.classes and q not in self.facts.functions:
            return q
        return None

    def _literal_int(self, expr: Optional[cst.BaseExpression], at: Stmt, _depth: int = 0) -> Optional[int]:
        """A literal integer, a name bound to one, or `len()` of a literal list or tuple."""
        if expr is None or _depth > 3:
            return None
        if isinstance(expr, cst.Name):
            expr = flow.assigned_value(self.index, expr.value, at)
            if expr is None:
                return None
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "len" \
                and len(expr.args) == 1:
            items = expr.args[0].value
            if isinstance(items, cst.Name):
                items = flow.assigned_value(self.index, items.value, at)
            if isinstance(items, (cst.List, cst.Tuple)) and not any(isinstance(e, cst.StarredElement)
                                                                     for e in items.elements):
                return len(items.elements) or None  # an empty list is filled later
            return None
        v = literal_value(expr)
        return int(v) if isinstance(v, float) and v == int(v) else None

    def activation_of(self, expr: Optional[cst.BaseExpression]) -> Optional[str]:
        """`"softmax"`, `None`, `tf.nn.softmax`, `keras.activations.sigmoid` -> a name;
        an absent activation is linear; anything else is unknown (None)."""
        if expr is None:
            return "linear"
        v = literal_value(expr)
        if v is None:
            return "linear"
        if isinstance(v, str):
            return v.lower()
        q = self.facts.qualify(expr)
        if q and (is_keras_name(q) or q.startswith("tensorflow.")) and last_part(q) in _ACTIVATION_FUNCTIONS | {"linear"}:
            return last_part(q)
        return None

    # Layers ----------------------------------------------------------------------
    def layer_output(self, layer: cst.Call, at: Stmt) -> Optional[KerasOutput]:
        """The output of one layer construction seen on its own (Dense only)."""
        name = self.keras_callee(layer.func)
        if name != "Dense" or any(a.star for a in layer.args):
            return None
        units = self._literal_int(argument(layer, 0, "units") or argument(layer, 99, "output_dim"), at)
        act_arg = keyword(layer, "activation") or positional(layer, 1)
        activation = self.activation_of(act_arg.value if act_arg is not None else None)
        node = act_arg if activation not in (None, "linear") else None
        return KerasOutput(units, activation, layer, node)

    def _activation_layer(self, layer: cst.Call) -> Optional[str]:
        name = self.keras_callee(layer.func)
        if name == "Activation":
            arg = argument(layer, 0, "activation")
            return self.activation_of(arg) if arg is not None else None
        return _ACTIVATION_LAYERS.get(name or "")

    def _stack_output(self, layers: list[cst.CSTNode], at: Stmt) -> Optional[KerasOutput]:
        """The output of a list of layers applied in order."""
        if not layers or not isinstance(layers[-1], cst.Call):
            return None
        last = layers[-1]
        act = self._activation_layer(last)
        if act is not None:
            below = self._stack_output(layers[:-1], at)
            if below is None:
                return None
            return KerasOutput(below.units, act, below.dense, last)
        return self.layer_output(last, at)

    # Models ----------------------------------------------------------------------
    def _sequential_layers(self, call: cst.Call, bound_to: Optional[str], stmt: Stmt) -> Optional[list]:
        arg = argument(call, 0, "layers")
        layers: list = []
        if arg is not None:
            if not isinstance(arg, (cst.List, cst.Tuple)) or any(isinstance(e, cst.StarredElement) for e in arg.elements):
                return None
            layers = [e.value for e in arg.elements]
        if bound_to is not None:
            last_add = None
            for s in self.index.function_body(stmt.function):
                if s.order <= stmt.order:
                    continue
                for c in s.calls:
                    mc = method_call(c)
                    if mc and mc[1] == "add" and dotted(mc[0]) == bound_to and c.args:
                        layers.append(c.args[0].value)
                        last_add = s
                    elif mc and mc[1] == "pop" and dotted(mc[0]) == bound_to:
                        return None
            if last_add is not None and last_add.parent is not stmt.parent:
                return None  # the last layer is added under a condition or in a loop
        return layers

    def output_of_model_expr(self, expr: Optional[cst.BaseExpression], at: Stmt, bound_to: Optional[str] = None,
                             _depth: int = 0) -> Optional[KerasOutput]:
        """The output layer of the model an expression builds (or names)."""
        if expr is None or _depth > 4:
            return None
        if isinstance(expr, cst.Name):
            s = flow.last_assignment_before(self.index, expr.value, at)
            if s is None:
                return None
            return self.output_of_model_expr(value_assigned(s.node, expr.value), s, expr.value, _depth + 1)
        if not isinstance(expr, cst.Call):
            return None
        name = self.keras_callee(expr.func)
        if name == "Sequential":
            layers = self._sequential_layers(expr, bound_to, at)
            return self._stack_output(layers, at) if layers is not None else None
        if name == "Model":
            outputs = argument(expr, 1, "outputs")
            return self._tensor_output(outputs, at, 0) if outputs is not None else None
        callee = dotted(expr.func)
        if callee in self.facts.classes and self.is_keras_model_class(callee):
            return self._subclass_output(callee)
        if callee is not None and len(self.facts.functions.get(callee, [])) == 1:
            return self._returned_model(self.facts.functions[callee][0], _depth)
        return None

    def _returned_model(self, function, depth: int) -> Optional[KerasOutput]:
        returns = [s for s in self.index.function_body(function.stmt) if isinstance(s.node, cst.Return)]
        if len(returns) != 1 or returns[0].node.value is None:
            return None
        return self.output_of_model_expr(returns[0].node.value, returns[0], None, depth + 1)

    def is_keras_model_class(self, class_name: str, depth: int = 0) -> bool:
        cls = self.facts.classes.get(class_name)
        if cls is None or depth > 4:
            return False
        for base in cls.bases:
            if is_keras_name(base) and last_part(base) in ("Model", "Sequential"):
                return True
            if last_part(base) in self.facts.classes and last_part(base) != class_name \
                    and self.is_keras_model_class(last_part(base), depth + 1):
                return True
        return False

    def _subclass_output(self, class_name: str) -> Optional[KerasOutput]:
        cls = self.facts.classes[class_name]
        call = cls.methods.get("call")
        if call is None:
            return None
        returns = [s for s in self.index.function_body(call.stmt) if isinstance(s.node, cst.Return)]
        if len(returns) != 1 or returns[0].node.value is None:
            return None
        return self._tensor_output(returns[0].node.value, returns[0], 0, cls)

    def _attribute_layer(self, cls, attr: str) -> Optional[cst.Call]:
        found = None
        for s in self.index.statements[cls.stmt.order + 1: cls.stmt.end_order + 1]:
            node = s.node
            if isinstance(node, cst.Assign) and any(dotted(t.target) == f"self.{attr}" for t in node.targets):
                if found is not None or not isinstance(node.value, cst.Call):
                    return None  # assigned twice, or not a layer construction
                found = node.value
        return found

    def _tensor_output(self, expr: cst.BaseExpression, at: Stmt, depth: int, cls=None) -> Optional[KerasOutput]:
        """The output of a symbolic tensor: `Dense(10, activation="softmax")(x)`,
        `layers.Activation("softmax")(x)`, `tf.nn.softmax(self.head(x))`, a name bound to one."""
        if depth > 12:
            return None
        if isinstance(expr, cst.Name):
            s = flow.last_assignment_before(self.index, expr.value, at)
            value = value_assigned(s.node, expr.value) if s is not None else None
            return self._tensor_output(value, s, depth + 1, cls) if value is not None else None
        if not isinstance(expr, cst.Call):
            return None
        layer = self._applied_layer(expr.func, at, cls)
        inner = positional(expr, 0)
        if layer is not None:
            act = self._activation_layer(layer)
            if act is not None:
                below = self._tensor_output(inner.value, at, depth + 1, cls) if inner is not None else None
                return KerasOutput(below.units, act, below.dense, layer) if below is not None else None
            return self.layer_output(layer, at)
        q = self.facts.qualify(expr.func) or ""
        if (is_keras_name(q) or q.startswith("tensorflow.")) and last_part(q) in _ACTIVATION_FUNCTIONS and inner is not None:
            below = self._tensor_output(inner.value, at, depth + 1, cls)
            return KerasOutput(below.units, last_part(q), below.dense, expr) if below is not None else None
        return None

    def _applied_layer(self, func: cst.BaseExpression, at: Stmt, cls) -> Optional[cst.Call]:
        """The layer construction behind the callee of `layer(x)`."""
        if isinstance(func, cst.Call):
            return func if self.keras_callee(func.func) is not None else None
        key = dotted(func)
        if key is None:
            return None
        if key.startswith("self.") and cls is not None and key.count(".") == 1:
            built = self._attribute_layer(cls, key[5:])
        elif "." not in key:
            built = flow.assigned_value(self.index, key, at)
        else:
            return None
        return built if isinstance(built, cst.Call) and self.keras_callee(built.func) is not None else None

    # Losses and compile ----------------------------------------------------------
    def loss_of(self, expr: Optional[cst.BaseExpression], at: Stmt) -> Optional[KerasLoss]:
        if expr is None:
            return None
        original = expr
        if isinstance(expr, cst.Name):
            value = flow.assigned_value(self.index, expr.value, at)
            if value is None:
                return None
            expr = value
        v = literal_value(expr)
        if isinstance(v, str):
            return KerasLoss(original, expr, _CROSSENTROPY_STRINGS.get(v), "string", False)
        if isinstance(expr, cst.Call):
            name = self.keras_callee(expr.func)
            if name is None:
                return None
            if any(a.star for a in expr.args):
                return None
            arg = keyword(expr, "from_logits") or (positional(expr, 0) if name in _CROSSENTROPY_CLASSES else None)
            fl = False if arg is None else literal_value(arg.value)
            return KerasLoss(original, expr, _CROSSENTROPY_CLASSES.get(name), "object",
                             fl if isinstance(fl, bool) else None)
        name = self.keras_callee(expr) if isinstance(expr, (cst.Attribute, cst.Name)) else None
        if name is not None:
            return KerasLoss(original, expr, _CROSSENTROPY_STRINGS.get(name), "function", False)
        return None

    @cached_property
    def compiles(self) -> list[KerasCompile]:
        if not self.used:
            return []
        out = []
        for call, stmt in self.index.calls:
            mc = method_call(call)
            if mc is None or mc[1] != "compile" or any(a.star for a in call.args):
                continue
            receiver = mc[0]
            if isinstance(receiver, cst.Name):
                output = self.output_of_model_expr(receiver, stmt)
            elif dotted(receiver) == "self":
                function = self.facts.function_of(stmt)
                cls_stmt = function.class_stmt if function is not None else None
                name = cls_stmt.node.name.value if cls_stmt is not None else None
                output = self._subclass_output(name) if name and self.is_keras_model_class(name) else None
            else:
                output = None
            loss = self.loss_of(argument(call, 1, "loss"), stmt)
            out.append(KerasCompile(call, stmt, output, loss, self._metrics(argument(call, 2, "metrics"))))
        return out

    @staticmethod
    def _metrics(expr: Optional[cst.BaseExpression]) -> list[str]:
        if not isinstance(expr, (cst.List, cst.Tuple)):
            return []
        out = []
        for e in expr.elements:
            v = literal_value(e.value)
            if isinstance(v, str):
                out.append(v.lower())
        return out

    # Generators, predict and labels ----------------------------------------------
    @cached_property
    def shuffling_sources(self) -> list[KerasSource]:
        if not self.used:
            return []
        out = []
        for stmt in self.facts.statements:
            node = stmt.node
            if not isinstance(node, cst.Assign) or len(node.targets) != 1 or not isinstance(node.targets[0].target, cst.Name):
                continue
            call = node.value
            if not isinstance(call, cst.Call) or any(a.star for a in call.args):
                continue
            method = _source_method(call, self)
            if method is None:
                continue
            arg = keyword(call, "shuffle")
            shuffle = True if arg is None else literal_value(arg.value)
            out.append(KerasSource(node.targets[0].target.value, call, stmt, method,
                                   shuffle if isinstance(shuffle, bool) else None, arg))
        return out

    @cached_property
    def shuffled_predictions(self) -> list[ShuffledPrediction]:
        out = []
        for source in self.shuffling_sources:
            if source.shuffle is not True:
                continue
            found = self._prediction_meets_labels(source)
            if found is not None:
                out.append(found)
        return out

    def _prediction_meets_labels(self, source: KerasSource) -> Optional[ShuffledPrediction]:
        scope = self.index.function_body(source.stmt.function)
        later = [s for s in scope if s.order > source.stmt.order]
        rebound = next((s.order for s in later if source.name in s.stores), None)
        if rebound is not None:
            later = [s for s in later if s.order < rebound]
        predicted: set[str] = set()
        labels: set[str] = set()
        predict_call = None
        label_text = None
        trains = False
        for s in later:
            for c in s.calls:
                mc = method_call(c)
                if mc is None:
                    continue
                data = argument(c, 0, "x")
                if mc[1] in ("fit", "fit_generator") and _is_name(data, source.name):
                    trains = True
            own_predict = next((c for c in s.calls if _predict_on(c, source.name)), None)
            reads_labels = self._reads_labels(s, source)
            if reads_labels and label_text is None:
                label_text = reads_labels
            mentions_pred = own_predict is not None or bool(s.loads & predicted)
            mentions_labels = bool(reads_labels) or bool(s.loads & labels)
            if own_predict is not None and predict_call is None:
                predict_call = own_predict
            if predict_call is not None and mentions_pred and mentions_labels and _compares(s):
                return ShuffledPrediction(source, predict_call, s, label_text or "its labels", trains)
            if mentions_pred:
                predicted |= s.stores
            if mentions_labels:
                labels |= s.stores
                if isinstance(s.node, cst.Expr):
                    labels |= _mutated_names(s.node)
        return None

    def _reads_labels(self, stmt: Stmt, source: KerasSource) -> Optional[str]:
        """How the statement reads the source's labels apart from predict: `gen.classes`,
        or (datasets) a comprehension or loop over the dataset without a model call."""
        nodes = [stmt.node] if not isinstance(stmt.node, (cst.For, cst.While, cst.If, cst.With, cst.Try,
                                                           cst.FunctionDef, cst.ClassDef)) else []
        if source.method.startswith("flow_from"):
            for node in nodes:
                for n in walk(node):
                    if isinstance(n, cst.Attribute) and n.attr.value in _LABEL_ATTRIBUTES and _is_name(n.value, source.name):
                        return f"`{source.name}.{n.attr.value}`"
            return None
        for node in nodes:
            for n in walk(node):
                if isinstance(n, (cst.ListComp, cst.GeneratorExp)) and _is_name(n.for_in.iter, source.name):
                    return f"a second pass over `{source.name}`"
        parent = stmt.parent
        while parent is not None and not parent.is_function:
            if isinstance(parent.node, cst.For) and _is_name(parent.node.iter, source.name):
                # a loop that predicts batch by batch keeps predictions and labels together
                if not any(_predict_call(c) or self.facts.model_key(c) for c, _ in self.facts.calls_within(parent)):
                    return f"a second pass over `{source.name}`"
            parent = parent.parent
        return None


def _source_method(call: cst.Call, kf: KerasFacts) -> Optional[str]:
    mc = method_call(call)
    if mc is not None and mc[1] in ("flow_from_directory", "flow_from_dataframe"):
        return mc[1]
    name = kf.keras_callee(call.func)
    if name in SHUFFLING_SOURCES:
        return name
    return None


# Calls that score predictions against labels (sklearn, numpy, tf, torchmetrics spellings).
_SCORING_WORDS = ("matrix", "report", "score", "accuracy", "auc", "precision", "recall", "f1", "equal")


def _compares(stmt: Stmt) -> bool:
    """Does the statement compare or score (==, confusion_matrix, accuracy_score, ...)?
    Printing the two side by side, or their lengths, is not a comparison."""
    if isinstance(stmt.node, (cst.For, cst.While, cst.If, cst.With, cst.Try, cst.FunctionDef, cst.ClassDef)):
        return False
    for n in walk(stmt.node):
        if isinstance(n, cst.Comparison) and any(isinstance(c.operator, (cst.Equal, cst.NotEqual))
                                                  for c in n.comparisons):
            return True
        if isinstance(n, cst.Call):
            name = last_part(dotted(n.func) or "").lower()
            if any(w in name for w in _SCORING_WORDS):
                return True
    return False


def _is_name(expr: Optional[cst.CSTNode], name: str) -> bool:
    return isinstance(expr, cst.Name) and expr.value == name


def _predict_call(call: cst.Call) -> bool:
    mc = method_call(call)
    return mc is not None and mc[1] in ("predict", "predict_generator", "predict_on_batch")


def _predict_on(call: cst.Call, name: str) -> bool:
    mc = method_call(call)
    return mc is not None and mc[1] in ("predict", "predict_generator") and _is_name(argument(call, 0, "x"), name)


def _mutated_names(node: cst.Expr) -> set[str]:
    """`y_true.extend(labels)` -> {"y_true"}."""
    value = node.value
    mc = method_call(value)
    if mc is not None and mc[1] in ("append", "extend") and isinstance(mc[0], cst.Name):
        return {mc[0].value}
    return set()
