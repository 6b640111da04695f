"""Tensor shapes where the code makes them known: `(N, 1)` columns and `(N,)` vectors.

A column is the output of a model whose last layer has one unit (`nn.Linear(k, 1)`,
Keras `Dense(1)` through `predict`) or an explicit `unsqueeze(1)` / `view(-1, 1)`;
element-wise steps (`> 0.5`, `.float()`, `torch.round`, `torch.sigmoid`, `.numpy()`)
keep it. A vector is `.squeeze()`, `.view(-1)`, `.flatten()`, the labels of a
torchvision classification dataset or of a `TensorDataset` built from a vector, or
the labels of a Keras dataset loader. Anything else is unknown (None).
"""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Optional

import libcst as cst

from .data import TENSOR_DATASETS, is_torchvision_dataset
from .exprs import argument, dotted, last_part, literal_value, method_call, number, positional, value_assigned
from .index import Stmt
from .walk import walk

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts

# Element-wise tensor/array methods and functions: the shape stays.
_SAME_METHODS = {"float", "long", "int", "double", "half", "bool", "round", "detach", "cpu", "cuda", "numpy",
                 "to", "astype", "sigmoid", "clone", "type", "type_as", "contiguous", "byte"}
_SAME_FUNCTIONS = {"torch.round", "torch.sigmoid", "numpy.round", "numpy.rint", "torch.special.expit",
                   "numpy.asarray", "numpy.array", "torch.nn.functional.sigmoid"}
_TO_VECTOR = {"squeeze", "flatten", "ravel"}
_CLASSIFICATION_DATASETS = {"MNIST", "FashionMNIST", "KMNIST", "EMNIST", "QMNIST", "CIFAR10", "CIFAR100",
                            "SVHN", "STL10", "ImageFolder", "DatasetFolder", "USPS", "GTSRB", "Food101",
                            "Flowers102", "ImageNet", "EuroSAT"}
# keras.datasets whose labels are 1-D (cifar10/cifar100 labels are (N, 1)).
_KERAS_VECTOR_DATASETS = {"imdb", "mnist", "fashion_mnist", "reuters"}


class ShapeFacts:
    def __init__(self, facts: "ModuleFacts") -> None:
        self.facts = facts
        self.index = facts.index

    # Bindings ------------------------------------------------------------------------
    def _binding(self, name: str, at: Stmt) -> Optional[Stmt]:
        """The statement that last binds `name` before `at`, an enclosing `for` included."""
        found = None
        for s in self.index.function_body(at.function):
            if s.order >= at.order:
                break
            if name in s.stores and (not s.contains(at) or isinstance(s.node, cst.For)):
                found = s
        if found is None and at.function is not None:
            params = at.function.node.params
            if name in {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}:
                return None
            for s in self.index.function_body(None):
                if name in s.stores:
                    found = s
        return found

    # Columns ---------------------------------------------------------------------------
    def column(self, expr: Optional[cst.BaseExpression], at: Stmt, _depth: int = 0) -> Optional[str]:
        """Why `expr` has shape (N, 1), or None when that is not known."""
        if expr is None or _depth > 10:
            return None
        if isinstance(expr, cst.Name):
            s = self._binding(expr.value, at)
            if s is None or isinstance(s.node, cst.For):
                return None
            value = value_assigned(s.node, expr.value)
            return self.column(value, s, _depth + 1) if value is not None else None
        if isinstance(expr, cst.Comparison) and len(expr.comparisons) == 1 and _is_scalar(expr.comparisons[0].comparator):
            return self.column(expr.left, at, _depth + 1)
        if isinstance(expr, cst.Attribute) and expr.attr.value == "data":
            return self.column(expr.value, at, _depth + 1)
        if not isinstance(expr, cst.Call):
            return None
        q = self.facts.qualify(expr.func) or ""
        if q in _SAME_FUNCTIONS and expr.args:
            return self.column(expr.args[0].value, at, _depth + 1)
        mc = method_call(expr)
        if mc is not None:
            obj, meth = mc
            if meth in _SAME_METHODS and not q.startswith(("torch.", "numpy.")) and dotted(obj) != "self":
                return self.column(obj, at, _depth + 1)
            if meth == "unsqueeze" and _dim_is(expr, 1, -1) and self.vector(obj, at, _depth + 1):
                return f"`{self._code(expr)}`"
            if meth == "predict":
                output = self.facts.keras.output_of_model_expr(obj, at) if isinstance(obj, cst.Name) else None
                if output is not None and output.units == 1:
                    return f"`{self._code(expr)}`, a Keras model ending in `Dense(1)`"
                return None
        got = self.facts.outputs.value_end(expr, at)
        if got is not None and got[0].out_features == 1:
            return f"`{self._code(expr)}`, whose last layer has one output"
        return None

    # Vectors ---------------------------------------------------------------------------
    def vector(self, expr: Optional[cst.BaseExpression], at: Stmt, _depth: int = 0) -> Optional[str]:
        """Why `expr` has shape (N,), or None when that is not known."""
        if expr is None or _depth > 10:
            return None
        if isinstance(expr, cst.Name):
            s = self._binding(expr.value, at)
            if s is None:
                return None
            if isinstance(s.node, cst.For):
                return self._loop_label(s, expr.value, _depth)
            if isinstance(s.node, cst.Assign):
                keras = self._keras_dataset_labels(s, expr.value)
                if keras:
                    return keras
            value = value_assigned(s.node, expr.value)
            return self.vector(value, s, _depth + 1) if value is not None else None
        if isinstance(expr, cst.Attribute) and expr.attr.value in ("data", "values"):
            if expr.attr.value == "values" and _single_column(expr.value):
                return f"`{self._code(expr)}`"
            return self.vector(expr.value, at, _depth + 1) if expr.attr.value == "data" else None
        if not isinstance(expr, cst.Call):
            return None
        q = self.facts.qualify(expr.func) or ""
        mc = method_call(expr)
        if mc is not None:
            obj, meth = mc
            if meth in _TO_VECTOR and not q.startswith(("torch.", "numpy.")) and dotted(obj) != "self":
                if meth != "squeeze" or not expr.args or _dim_is(expr, 1, -1):
                    return f"`{self._code(expr)}`"
            if meth in ("view", "reshape") and len(expr.args) == 1 and number(expr.args[0].value) == -1:
                return f"`{self._code(expr)}`"
            if meth == "to_numpy" and _single_column(obj):
                return f"`{self._code(expr)}`"
            if meth in _SAME_METHODS and not q.startswith(("torch.", "numpy.")) and dotted(obj) != "self":
                return self.vector(obj, at, _depth + 1)
        if q in _SAME_FUNCTIONS and expr.args:
            return self.vector(expr.args[0].value, at, _depth + 1)
        if q in ("torch.tensor", "torch.as_tensor", "torch.from_numpy", "torch.LongTensor", "torch.FloatTensor") and expr.args:
            return self.vector(expr.args[0].value, at, _depth + 1)
        if q == "torch.randint":
            size = argument(expr, 2, "size")
            if isinstance(size, cst.Tuple) and len(size.elements) == 1:
                return f"`{self._code(expr)}`"
        return None

    def _loop_label(self, loop_stmt: Stmt, name: str, depth: int) -> Optional[str]:
        """`for x, y in loader`: y's shape from the dataset behind the loader."""
        node = loop_stmt.node
        target, iterable = node.target, node.iter
        if isinstance(iterable, cst.Call) and last_part(self.facts.qualify(iterable.func) or "") == "enumerate" \
                and isinstance(target, cst.Tuple) and len(target.elements) == 2 and iterable.args:
            target, iterable = target.elements[1].value, iterable.args[0].value
        if isinstance(iterable, cst.Call) and last_part(self.facts.qualify(iterable.func) or "") in ("tqdm", "iter") \
                and iterable.args:
            iterable = iterable.args[0].value
        if not isinstance(target, (cst.Tuple, cst.List)) or not isinstance(iterable, cst.Name):
            return None
        names = [e.value.value if isinstance(e.value, cst.Name) else None for e in target.elements]
        if names.count(name) != 1:
            return None
        position = names.index(name)
        loader = self.facts.construction(iterable.value, loop_stmt, kind="loader")
        if loader is None or any(a.star for a in loader.call.args) or argument(loader.call, 99, "collate_fn") is not None:
            return None
        return self._item_part(loader.dataset_expr(), loader.stmt, position, depth)

    def _item_part(self, dataset, at: Stmt, position: int, depth: int) -> Optional[str]:
        """The shape of part `position` of the dataset's items (a name or a construction)."""
        if depth > 10:
            return None
        if isinstance(dataset, cst.Name):
            built = self.facts.construction(dataset.value, at)
            if built is None:
                return self._split_part(dataset.value, at, position, depth)
            call, callee, at = built.call, built.callee, built.stmt
        elif isinstance(dataset, cst.Call):
            call, callee = dataset, self.facts.qualify(dataset.func) or ""
        else:
            return None
        if any(a.star for a in call.args):
            return None
        short = last_part(callee)
        if is_torchvision_dataset(callee) or short in ("ImageFolder", "DatasetFolder"):
            if position == 1 and short in _CLASSIFICATION_DATASETS and argument(call, 99, "target_transform") is None:
                return f"the labels of `{short}`, class indices"
            return None
        if callee in TENSOR_DATASETS:
            parts = [a.value for a in call.args if a.keyword is None]
            if position < len(parts):
                why = self.vector(parts[position], at, depth + 1)
                return f"the labels of a `TensorDataset`, {why}" if why else None
        return None

    def _split_part(self, name: str, at: Stmt, position: int, depth: int) -> Optional[str]:
        """`train_ds, val_ds = random_split(ds, ...)`: items are those of `ds`."""
        s = self._binding(name, at)
        if s is None or not isinstance(s.node, cst.Assign) or not isinstance(s.node.value, cst.Call):
            return None
        call = s.node.value
        if last_part(self.facts.qualify(call.func) or "") not in ("random_split", "Subset") or not call.args:
            return None
        return self._item_part(call.args[0].value, s, position, depth + 1)

    def _keras_dataset_labels(self, stmt: Stmt, name: str) -> Optional[str]:
        """`(x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data()`."""
        node = stmt.node
        if not isinstance(node.value, cst.Call) or len(node.targets) != 1:
            return None
        q = self.facts.qualify(node.value.func) or ""
        parts = q.split(".")
        if len(parts) < 3 or parts[-1] != "load_data" or parts[-2] not in _KERAS_VECTOR_DATASETS \
                or "datasets" not in parts:
            return None
        target = node.targets[0].target
        if not isinstance(target, cst.Tuple):
            return None
        for pair in target.elements:
            inner = pair.value
            if isinstance(inner, cst.Tuple) and len(inner.elements) == 2:
                second = inner.elements[1].value
                if isinstance(second, cst.Name) and second.value == name:
                    return f"the labels of `{parts[-2]}.load_data()`"
        return None

    # Helpers ----------------------------------------------------------------------------
    def _code(self, node: cst.CSTNode) -> str:
        text = self.facts.module.code_for_node(node).strip()
        return text if len(text) <= 60 else text[:57] + "..."

    @cached_property
    def may_have_columns(self) -> bool:
        """Cheap gate before walking expressions: is any (N, 1) source built or called
        (`nn.Linear(k, 1)`, `Dense(1)`, `.unsqueeze(...)`)?"""
        for call, _ in self.index.calls:
            name = last_part(dotted(call.func) or "")
            if name == "unsqueeze":
                return True
            if name in ("Linear", "Dense", "LazyLinear"):
                size = argument(call, 1 if name == "Linear" else 0, "out_features" if name == "Linear" else "units")
                if size is not None and number(size) == 1:
                    return True
        return False

    def comparisons(self) -> list[tuple[cst.BaseExpression, cst.BaseExpression, cst.CSTNode, Stmt]]:
        """(left, right, node, statement) for `a == b`, `a != b`, `torch.eq(a, b)`, `a.eq(b)`."""
        out = []
        if not self.may_have_columns:
            return out
        for s in self.facts.statements:
            node = s.node
            if isinstance(node, (cst.For, cst.While, cst.If)):
                roots = [node.iter if isinstance(node, cst.For) else node.test]
            elif isinstance(node, (cst.With, cst.Try, cst.FunctionDef, cst.ClassDef, cst.Match)) or \
                    not isinstance(node, cst.BaseSmallStatement):
                continue
            else:
                roots = [node]
            for root in roots:
                for n in walk(root):
                    if isinstance(n, cst.Comparison) and len(n.comparisons) == 1 \
                            and isinstance(n.comparisons[0].operator, (cst.Equal, cst.NotEqual)):
                        out.append((n.left, n.comparisons[0].comparator, n, s))
                    elif isinstance(n, cst.Call):
                        q = self.facts.qualify(n.func) or ""
                        mc = method_call(n)
                        if q == "torch.eq" and len(n.args) >= 2:
                            out.append((n.args[0].value, n.args[1].value, n, s))
                        elif mc is not None and mc[1] == "eq" and len(n.args) == 1 and not q.startswith("torch."):
                            out.append((mc[0], n.args[0].value, n, s))
        return out


def _is_scalar(expr: cst.BaseExpression) -> bool:
    v = literal_value(expr)
    return isinstance(v, float) or isinstance(expr, (cst.Name, cst.Attribute))


def _dim_is(call: cst.Call, *dims: int) -> bool:
    arg = positional(call, 0) or next((a for a in call.args if a.keyword and a.keyword.value == "dim"), None)
    return arg is not None and number(arg.value) in dims and len(call.args) == 1


def _single_column(expr: cst.BaseExpression) -> bool:
    """`df["label"]` (a Series), not `df[["label"]]` (a frame)."""
    if not isinstance(expr, cst.Subscript) or len(expr.slice) != 1:
        return False
    index = expr.slice[0].slice
    return isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString)
