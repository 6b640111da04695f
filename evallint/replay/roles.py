"""What a free name of a region stands for, judged from how the region uses it.

Roles pick the stand-in the child binds: a loader of seeded batches, the planted
model, a loss, an optimizer, the device, whole-set input/label tensors, or a few
integers. A name whose use fits no role gets none, and the region is not replayable.
"""
from __future__ import annotations

import re

import libcst as cst

# Roles whose stand-in replaces any assignment the user's code makes to the name.
STANDIN_ROLES = frozenset({"model", "loader", "criterion", "optimizer", "device", "progress"})
# Whole-set tensors: stand-ins too where the region evaluates without a loop of its own.
FULL_BATCH_ROLES = frozenset({"inputs", "labels"})

_LOSS = re.compile(r"crit|loss", re.I)
_OPTIM = re.compile(r"^(opt|optim|optimizer|optimiser)(_\w+)?$|optimi[sz]er", re.I)
_DEVICE = re.compile(r"^(device|dev|DEVICE|torch_device)$")
_LOADER = re.compile(r"loader|(^|_)dl($|_)|iterator$", re.I)
_PROGRESS = frozenset({"tqdm", "trange", "track", "progress_bar"})
_BATCH = re.compile(r"^(batch_size|bs|BATCH_SIZE|eval_batch_size|test_batch_size|mini_batch_size|minibatch_size)$")
_CLASSES = re.compile(r"^(num_classes|n_classes|nclasses|NUM_CLASSES|classes_count)$")
_LABELS = re.compile(r"^(y|Y|y_true|y_test|test_y|test_Y|val_y|val_Y|labels?|targets?|y_val|gt)$|_(y|Y|labels?|targets?)$")
_MODEL = re.compile(r"model|net|clf|classifier|encoder|network", re.I)
_MODEL_METHODS = frozenset({"eval", "train", "parameters", "forward", "state_dict", "modules", "named_modules",
                            "load_state_dict", "children", "zero_grad_"})
_OPTIM_METHODS = frozenset({"zero_grad", "step"})
# Fitted preprocessing (scalers, encoders): replay keeps the stand-in data as it is.
_TRANSFORMER_METHODS = frozenset({"transform", "inverse_transform"})
# Counters that only the skipped training code advances (`if epoch % 10 == 0`).
# How many epochs the skipped set-up asked for: replay runs a few.
_EPOCHS = re.compile(r"^(epochs|num_epochs|n_epochs|nb_epochs|max_epochs|EPOCHS|NUM_EPOCHS|N_EPOCHS|total_epochs)$")
_COUNTER = re.compile(r"^(epoch|ep|epoch_idx|step|global_step|iteration|n_iter|current_epoch)$")
_ITER_WRAPPERS = frozenset({"enumerate", "iter", "tqdm", "track", "list"})


class _Usage(cst.CSTVisitor):
    def __init__(self) -> None:
        self.called: dict[str, list[cst.Call]] = {}
        self.methods: dict[str, set[str]] = {}
        self.iterated: set[str] = set()
        self.devices: set[str] = set()
        self.compared: set[str] = set()
        self.loop_inputs: set[str] = set()  # first element of a batch: `for x, y in loader`

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Name):
            self.called.setdefault(func.value, []).append(node)
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            self.methods.setdefault(func.value.value, set()).add(func.attr.value)
        if isinstance(func, cst.Attribute) and func.attr.value == "to":
            for a in node.args:
                if isinstance(a.value, cst.Name) and (a.keyword is None or a.keyword.value == "device"):
                    self.devices.add(a.value.value)
        for a in node.args:
            if a.keyword is not None and a.keyword.value == "device" and isinstance(a.value, cst.Name):
                self.devices.add(a.value.value)

    def visit_For(self, node: cst.For) -> None:
        target = node.target
        if isinstance(node.iter, cst.Call) and _callee(node.iter) == "enumerate" \
                and isinstance(target, cst.Tuple) and len(target.elements) == 2:
            target = target.elements[1].value
        if isinstance(target, (cst.Tuple, cst.List)) and target.elements \
                and isinstance(target.elements[0].value, cst.Name):
            self.loop_inputs.add(target.elements[0].value.value)
        it = node.iter
        while isinstance(it, cst.Call) and it.args and _callee(it) in _ITER_WRAPPERS | _PROGRESS:
            it = it.args[0].value
        if isinstance(it, cst.Name):
            self.iterated.add(it.value)

    def visit_Comparison(self, node: cst.Comparison) -> None:
        if not any(isinstance(t.operator, (cst.Equal, cst.NotEqual)) for t in node.comparisons):
            return
        for expr in [node.left] + [t.comparator for t in node.comparisons]:
            root = _root_name(expr)
            if root:
                self.compared.add(root)


def _callee(call: cst.Call) -> str:
    f = call.func
    if isinstance(f, cst.Name):
        return f.value
    if isinstance(f, cst.Attribute):
        return f.attr.value
    return ""


# Calls that pass their first argument's data through: `torch.tensor(scaler.transform(X))`.
_DATA_THROUGH = frozenset({"tensor", "as_tensor", "from_numpy", "FloatTensor", "LongTensor", "Tensor", "array",
                           "asarray", "transform", "Variable", "stack", "cat", "float32"})


def _root_name(expr: cst.BaseExpression) -> str:
    """`test_Y.view(-1, 1).float()` -> `test_Y`; `torch.tensor(scaler.transform(X))` -> `X`."""
    while True:
        if isinstance(expr, cst.Name):
            return expr.value
        if isinstance(expr, cst.Call):
            if _callee(expr) in _DATA_THROUGH and expr.args and expr.args[0].keyword is None:
                expr = expr.args[0].value
                continue
            expr = expr.func
        elif isinstance(expr, (cst.Attribute, cst.Subscript)):
            expr = expr.value
        else:
            return ""


def infer_roles(node: cst.CSTNode, names) -> dict[str, str]:
    u = _Usage()
    node.visit(u)
    model_inputs: set[str] = set()
    criterion_targets: set[str] = set()
    roles: dict[str, str] = {}
    for name in names:
        role = _role_of(name, u)
        if role:
            roles[name] = role
    for name, calls in u.called.items():
        for call in calls:
            if roles.get(name) == "model" and call.args:
                root = _root_name(call.args[0].value)
                model_inputs.add(root)
            if roles.get(name) == "criterion" and len(call.args) >= 2:
                criterion_targets.add(_root_name(call.args[1].value))
    for name in names:
        if name in roles:
            continue
        if name in model_inputs:
            roles[name] = "inputs"
        elif name in criterion_targets or (name in u.compared and _LABELS.search(name)):
            roles[name] = "labels"
    return roles


def _role_of(name: str, u: _Usage) -> str:
    methods = u.methods.get(name, set())
    if name in u.devices or _DEVICE.match(name):
        return "device"
    if name in _PROGRESS:
        return "progress"
    if name in u.iterated or (_LOADER.search(name) and not methods - {"dataset", "__len__"}):
        return "loader"
    if name in u.called and _LOSS.search(name):
        return "criterion"
    if _OPTIM.search(name) or (methods & _OPTIM_METHODS and not methods & _MODEL_METHODS):
        return "optimizer"
    if methods & _MODEL_METHODS or (name in u.called and (_MODEL.search(name) or any(
            call.args and _root_name(call.args[0].value) in u.loop_inputs for call in u.called[name]))):
        return "model"
    if methods and methods <= _TRANSFORMER_METHODS | {"fit_transform"}:
        return "transformer"
    if _COUNTER.match(name):
        return "counter"
    if _EPOCHS.match(name):
        return "epochs"
    if _BATCH.match(name):
        return "batch_size"
    if _CLASSES.match(name):
        return "num_classes"
    return ""
