"""The shared facts of one module, computed once and read by every rule.

Built on a single traversal (`ModuleIndex`); everything else is derived lazily and
cached, so a rule that asks nothing costs nothing. When a fact cannot be resolved
the answer is None ("unknown") and rules stay quiet.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import PurePath
from typing import Optional

import libcst as cst

from . import counts, data, flow, loops, losses as _losses, models, scopes, splits
from . import lightning as lightning_facts
from . import metrics as metric_facts
from .evaluation import EvalPass, Evaluation
from . import accumulators as _accumulators, loaders as _loaders, predictions as _predictions
from .exprs import dotted, last_part, method_call
from .imports import import_aliases, qualify as _qualify
from .index import ModuleIndex, Stmt
from .patterns import DEFAULT_PATTERNS, NamePatterns
from . import resolve  # project view and model bindings

__all__ = ["EvalPass", "ModuleFacts", "Stmt"]

_DEVICE_METHODS = {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval",
                   "requires_grad_", "share_memory"}
# Rules gate on these imports; each rule lists them among its prefilter tokens too.
ML_ROOTS = frozenset({"torch", "torchvision", "pytorch_lightning", "lightning", "timm", "transformers",
                      "torchmetrics", "tensorflow", "keras", "jax", "flax", "sklearn", "numpy"})
TORCH_TOKENS = ("torch", "lightning", "timm", "transformers")
ML_TOKENS = ("torch", "lightning", "timm", "transformers", "tensorflow", "keras", "jax", "flax",
             "sklearn", "numpy")
_TORCH_ROOTS = ("torch", "pytorch_lightning", "lightning", "torchvision", "timm", "transformers")


class ModuleFacts:
    def __init__(self, module: cst.Module, path: str = "<module>",
                 patterns: NamePatterns = DEFAULT_PATTERNS, project=None) -> None:
        self.module = module
        self.path = path
        self.patterns = patterns
        self.index = ModuleIndex(module)
        self.project = project  # a project.ProjectLink: the other modules of the tree, or None
        if project is not None:
            project.bind_imports(self.statements)

    # Basic tables ---------------------------------------------------------------
    @property
    def statements(self) -> list[Stmt]:
        return self.index.statements

    def stmt(self, node: cst.CSTNode) -> Optional[Stmt]:
        return self.index.stmt(node)

    @cached_property
    def aliases(self) -> dict[str, str]:
        return import_aliases(self.statements)

    def qualify(self, expr: cst.CSTNode) -> Optional[str]:
        return _qualify(expr, self.aliases)

    @cached_property
    def frameworks(self) -> frozenset[str]:
        """Root packages of the imported ML frameworks (torch, tensorflow, numpy, ...).
        Behind a star import (`from nn import *` re-exporting torch) the roots the code
        names directly count too."""
        roots = {r for r in (v.split(".")[0] for v in self.aliases.values()) if r in ML_ROOTS}
        if any(isinstance(s.node, cst.ImportFrom) and isinstance(s.node.names, cst.ImportStar) for s in self.statements):
            roots |= {n for s in self.statements for n in s.loads if n in ML_ROOTS}
        return frozenset(roots)

    @property
    def uses_torch(self) -> bool:
        return bool(self.frameworks & set(_TORCH_ROOTS))

    @property
    def uses_ml(self) -> bool:
        return bool(self.frameworks)

    @cached_property
    def is_test_file(self) -> bool:
        name = PurePath(self.path).name
        return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"

    @cached_property
    def _scopes(self):
        return scopes.collect_functions(self.statements, self.qualify)

    @property
    def functions(self) -> dict[str, list[scopes.FunctionInfo]]:
        return self._scopes[0]

    @property
    def classes(self) -> dict[str, scopes.ClassInfo]:
        return self._scopes[1]

    @cached_property
    def _function_by_stmt(self) -> dict[int, scopes.FunctionInfo]:
        return {id(f.stmt): f for fs in self.functions.values() for f in fs}

    def function_of(self, stmt: Optional[Stmt]) -> Optional[scopes.FunctionInfo]:
        """The function a statement is in (None at module level)."""
        if stmt is None:
            return None
        target = stmt if stmt.is_function else stmt.function
        return self._function_by_stmt.get(id(target)) if target is not None else None

    def call_sites(self, function: scopes.FunctionInfo) -> list[scopes.CallSite]:
        return scopes.call_sites_of(function, self.index.calls)

    def calls_within(self, stmt: Stmt) -> list[tuple[cst.Call, Stmt]]:
        """All calls inside a statement, its nested blocks included."""
        return self.index.calls_in_range(stmt.order, stmt.end_order)

    # Loops and evaluation contexts ----------------------------------------------
    @cached_property
    def loops(self) -> list[loops.LoopInfo]:
        return [loops.make_loop(s, self.qualify) for s in self.statements if isinstance(s.node, cst.For)]

    @cached_property
    def _loop_by_stmt(self) -> dict[int, loops.LoopInfo]:
        return {id(l.stmt): l for l in self.loops}

    def loop(self, stmt: Stmt) -> Optional[loops.LoopInfo]:
        return self._loop_by_stmt.get(id(stmt))

    def enclosing_loops(self, stmt: Stmt) -> list[loops.LoopInfo]:
        """Innermost first, within the statement's function."""
        out = []
        child = stmt
        for a in stmt.ancestors():
            if a.is_function:
                break
            info = self.loop(a)
            if info is not None and child.block is a.blocks.get("body"):
                out.append(info)  # a loop's `else:` clause runs once, after it
            child = a
        return out

    def is_batch_loop(self, loop: loops.LoopInfo) -> bool:
        """Does the loop iterate over batches of data (not epochs or indices)?"""
        return self.evaluation.is_batch_loop(loop)

    def is_eval_data_loop(self, loop: loops.LoopInfo) -> bool:
        return self.evaluation.is_eval_data_loop(loop)

    def is_training_function(self, function: scopes.FunctionInfo) -> bool:
        if self.patterns.is_train_data(function.name) or "train" in function.name.lower():
            return True
        return self.backprops_in(function.stmt)

    def backprops_in(self, stmt: Stmt) -> bool:
        """Does the code call backward(), an optimizer step, or autograd.grad?"""
        for call, _ in self.calls_within(stmt):
            name = self.qualify(call.func) or dotted(call.func) or ""
            short = last_part(name)
            if short in ("backward", "manual_backward") or name in ("torch.autograd.grad", "torch.autograd.backward"):
                return True
            if short == "step" and method_call(call) and _looks_like_optimizer(dotted(call.func.value) or ""):
                return True
        return False

    def needs_gradients(self, stmt: Stmt) -> bool:
        """Gradient-based evaluation: backward, autograd.grad, requires_grad_, enable_grad."""
        if self.backprops_in(stmt):
            return True
        for call, _ in self.calls_within(stmt):
            short = last_part(self.qualify(call.func) or dotted(call.func))
            if short in ("requires_grad_", "enable_grad", "retain_grad", "grad", "vjp", "jvp", "jacobian", "hessian"):
                return True
        return False

    def eval_context(self, stmt: Stmt) -> Optional[str]:
        """Why a statement counts as evaluation code, or None. Lightning steps are
        reported as "lightning"."""
        return self.evaluation.eval_context(stmt)

    def is_lightning_step(self, function: scopes.FunctionInfo) -> bool:
        if function.name not in scopes.LIGHTNING_EVAL_STEPS or function.class_stmt is None:
            return False
        cls = self.classes.get(function.class_stmt.node.name.value)
        return cls is not None and models.is_lightning_class(cls, self.classes)

    @property
    def eval_passes(self) -> list[EvalPass]:
        """Forward passes in evaluation code (see `evaluation.Evaluation.eval_passes`)."""
        return self.evaluation.eval_passes

    def called_from_training(self, stmt: Stmt) -> bool:
        """Is the function around `stmt` called from code that also trains?"""
        function = self.function_of(stmt)
        if function is None:
            return False
        for site in self.call_sites(function):
            around = self.enclosing_loops(site.stmt)
            if any(self.backprops_in(l.stmt) for l in around):
                return True
            caller = self.function_of(site.stmt)
            if caller is not None and self.backprops_in(caller.stmt):
                return True
        return False

    # Gradient mode ---------------------------------------------------------------
    def under_no_grad_block(self, stmt: Stmt) -> bool:
        for a in stmt.ancestors():
            if a.is_function:
                return False
            if isinstance(a.node, cst.With) and any(self._is_no_grad_item(i.item, a) for i in a.node.items):
                return True
        return False

    def _is_no_grad_item(self, expr: cst.BaseExpression, at: Stmt) -> bool:
        if loops.is_no_grad_item(expr, self.qualify):
            return True
        if isinstance(expr, (cst.Attribute, cst.Name)) and self.qualify(expr) in loops.NO_GRAD:
            return True  # `with torch.no_grad:` - the intent is clear; EL204 reports the typo
        if isinstance(expr, cst.Name):
            value = flow.assigned_value(self.index, expr.value, at)
            return value is not None and loops.is_no_grad_item(value, self.qualify)
        return False

    def no_grad_decorated(self, function: scopes.FunctionInfo) -> bool:
        # project wrappers such as yolov5's `@smart_inference_mode()` count by their name
        return any(d in loops.NO_GRAD or loops.names_no_grad(d) for d in function.decorators)

    def grad_disabled(self, stmt: Stmt, _depth: int = 0) -> bool:
        """Are gradients off when this statement runs (with-block, decorator, a
        preceding set_grad_enabled(False), or every in-file caller)?"""
        if _depth == 0 and self.project is not None:
            self.project.asking = stmt
        if self.under_no_grad_block(stmt):
            return True
        function = self.function_of(stmt)
        if function is not None and (self.no_grad_decorated(function) or self.is_lightning_step(function)):
            return True
        state = None
        for s in flow.scope_statements(self.index, stmt):
            if s.order >= stmt.order:
                break
            for call in s.calls:
                if self.qualify(call.func) in loops.SET_GRAD_ENABLED and call.args:
                    v = call.args[0].value
                    state = not (isinstance(v, cst.Name) and v.value == "False")
        if state is False:
            return True
        if function is None or _depth > 3:
            return False
        sites = self.call_sites(function)
        if not sites and self.project is not None and resolve.is_exported_function(function):
            self.project.assume("no_grad", function.name, None)
        return bool(sites) and all(self.grad_disabled(site.stmt, _depth + 1) for site in sites)

    def parameters_frozen(self, key: str, at: Stmt) -> bool:
        """Before `at`: `key.requires_grad_(False)`, or `p.requires_grad = False` in a loop
        over `key.parameters()`: no graph is recorded for the model's own weights."""
        for s in flow.scope_statements(self.index, at):
            if s.order >= at.order:
                break
            for call in s.calls:
                mc = method_call(call)
                if mc and mc[1] == "requires_grad_" and dotted(mc[0]) == key and call.args \
                        and isinstance(call.args[0].value, cst.Name) and call.args[0].value.value == "False":
                    return True
            node = s.node
            if isinstance(node, cst.Assign) and isinstance(node.value, cst.Name) and node.value.value == "False" \
                    and any(isinstance(t.target, cst.Attribute) and t.target.attr.value == "requires_grad"
                            for t in node.targets):
                for loop in self.enclosing_loops(s):
                    it = loop.node.iter
                    if isinstance(it, cst.Call) and method_call(it) and method_call(it)[1] == "parameters" \
                            and dotted(it.func.value) == key:
                        return True
        return False

    # Models ----------------------------------------------------------------------
    def model_key(self, call: cst.Call) -> Optional[str]:
        """If the call runs a model's forward pass, the model's dotted name."""
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        key = dotted(func)
        if key is None or any(a.keyword is not None and a.keyword.value == "training" for a in call.args):
            return None
        head, _, attr = key.rpartition(".")
        name = attr or key
        if key in self.functions or key in self.classes or key in self.aliases:
            return None
        if head and head != "self":
            return None
        if self.patterns.is_model(name):
            return key
        if not head:
            stmt = self._stmt_of_call(call)
            if stmt is not None and self.model_binding_call(key, stmt) is not None:
                return key
        return None

    def model_calls(self, stmt: Stmt) -> list[tuple[cst.Call, str, Stmt]]:
        """(call, model key, statement) for every forward pass inside a statement."""
        out = []
        for call, s in self.calls_within(stmt):
            key = self.model_key(call)
            if key is not None:
                out.append((call, key, s))
        return out

    @cached_property
    def _call_stmt(self) -> dict[int, Stmt]:
        return {id(c): s for c, s in self.index.calls}

    def _stmt_of_call(self, call: cst.Call) -> Optional[Stmt]:
        return self._call_stmt.get(id(call))

    def model_binding_call(self, name: str, at: Stmt) -> Optional[cst.Call]:
        """`model = Net(...).to(device)` -> the `Net(...)` call, if it builds a module."""
        value, bound_at = resolve.rebound_model(self, name, at)
        call = _strip_device_calls(value)
        if call is None:
            return None
        callee = self.qualify(call.func) or ""
        short = last_part(callee)
        cls = resolve.class_live_at(self, short, bound_at)
        if cls is not None and resolve.is_module_class(self, cls):
            return call
        if cls is None and resolve.builds_project_model(self, callee):
            return call
        if callee.startswith(("torch.nn.", "nn.")) and short[:1].isupper():
            return call
        if callee.startswith(models.MODEL_FACTORIES_PREFIXES) or ".from_pretrained" in callee:
            return call
        return None

    def class_sensitivity(self, class_name: str, _seen: Optional[set] = None, at: Optional[Stmt] = None) -> Optional[bool]:
        """Mode sensitivity of an in-file class (its definition live at `at`); None
        when the class is not in the file."""
        cls = resolve.class_live_at(self, class_name, at)
        if cls is None:
            return None
        seen = _seen or set()
        if id(cls) in seen:
            return False
        seen.add(id(cls))
        result = models.calls_sensitivity(
            # Its methods run when the model is built (at `at`): the classes they name
            # are those live then; its bases are those live where it is defined.
            [c for c, _ in self.calls_within(cls.stmt)], self.qualify, resolve.sensitivity_resolver(self, at, seen))
        for base in cls.bases:
            if last_part(base) in self.classes and last_part(base) != class_name:
                b = self.class_sensitivity(last_part(base), seen, at=cls.stmt)
            elif base and resolve.project_sensitivity(self, base) is not None:
                b = resolve.project_sensitivity(self, base)
            else:
                continue
            if b:
                return True
            if b is None:
                result = None
        return result

    def model_sensitivity(self, key: str, at: Stmt, _depth: int = 0) -> Optional[bool]:
        """Does the model behind `key` contain train/eval-dependent layers?
        True / False / None (cannot tell)."""
        if _depth == 0 and self.project is not None:
            self.project.asking = at
        resolver = resolve.sensitivity_resolver(self, at)
        function = self.function_of(at)
        if key == "self" or key.startswith("self."):
            if function is None or function.class_stmt is None:
                return None
            cls_name = function.class_stmt.node.name.value
            if key == "self":
                return self.class_sensitivity(cls_name)
            attr = key.split(".", 1)[1]
            cls = self.classes.get(cls_name)
            for call, s in self.calls_within(cls.stmt):
                node = s.node
                if isinstance(node, cst.Assign) and any(dotted(t.target) == key for t in node.targets):
                    built = _strip_device_calls(node.value)
                    if built is not None:
                        return models.layer_sensitivity(built, self.qualify, resolver) if built is call else None
            return None
        call = self.model_binding_call(key, at)
        if call is not None:
            s = models.layer_sensitivity(call, self.qualify, resolve.sensitivity_resolver(self, self._stmt_of_call(call)))
            if s is None and last_part(self.qualify(call.func) or "") == "Sequential":
                return models.calls_sensitivity(_calls_in(call), self.qualify, resolver)
            return s
        if function is not None and key in function.params and _depth < 3:
            results = []
            if not self.call_sites(function) and self.project is not None and resolve.is_exported_function(function):
                self.project.assume("sensitive", function.name, key)
            for site in self.call_sites(function):
                arg = _argument_for(function, key, site.call)
                if isinstance(arg, cst.Name):
                    results.append(self.model_sensitivity(arg.value, site.stmt, _depth + 1))
                else:
                    results.append(None)
            if results and any(r is True for r in results):
                return True
            if results and all(r is False for r in results):
                return False
        return None

    def eval_mode_reaches(self, key: str, at: Stmt, _depth: int = 0) -> bool:
        """Is `key.eval()` (or train(False)) called before `at` in its scope with no
        train() after it, or before every in-file call of the enclosing function?
        A call of an in-file helper that switches the model counts too, and so does a
        bare `model.eval` (a typo that EL204 reports)."""
        if _depth == 0 and self.project is not None:
            self.project.asking = at
        state: Optional[bool] = None  # None: no mode call seen; True: train; False: eval
        seen = False
        for s in flow.scope_statements(self.index, at):
            if s.order >= at.order:
                break
            if isinstance(s.node, cst.Expr) and isinstance(s.node.value, cst.Attribute) \
                    and s.node.value.attr.value == "eval" and _same_model(dotted(s.node.value.value) or "", key):
                seen, state = True, False
                continue
            for call in s.calls:
                mc = models.mode_call(call) or self._helper_mode_call(call, key)
                if mc is None or not _same_model(mc[0], key):
                    continue
                seen = True
                state = mc[1]
        if seen and state is not True:
            return True  # eval() reached, or a non-literal train(flag): do not guess
        if seen:
            return False  # `model.train()` called right before: the callers' eval() is undone
        function = self.function_of(at)
        if function is None or _depth > 2:
            return False
        sites = self.call_sites(function)
        if not sites:
            if key in function.params and self.project is not None and resolve.is_exported_function(function):
                self.project.assume("eval", function.name, key)
            return False
        for site in sites:
            arg = _argument_for(function, key, site.call) if key in function.params else None
            site_key = dotted(arg) if arg is not None else (key if key not in function.params else None)
            if key.startswith("self.") and function.is_method:
                site_key = key if isinstance(site.call.func, cst.Attribute) and dotted(site.call.func.value) == "self" else None
            if site_key is None or not self.eval_mode_reaches(site_key, site.stmt, _depth + 1):
                return False
        return True

    def _helper_mode_call(self, call: cst.Call, key: str) -> Optional[tuple[str, Optional[bool]]]:
        """A call of an in-file function or `self.` method whose body switches `key`
        (the same name, or `self.x` inside a method) -> that switch."""
        name = dotted(call.func)
        if name is None:
            return None
        short = last_part(name)
        if name.startswith("self."):
            candidates = [f for f in self.functions.get(short, []) if f.is_method]
        else:
            candidates = [f for f in self.functions.get(name, []) if not f.is_method]
        for f in candidates:
            for inner, _ in self.calls_within(f.stmt):
                mc = models.mode_call(inner)
                if mc is not None and _same_model(mc[0], key):
                    return mc
        if not candidates:
            return resolve.imported_mode_call(self, call, key)
        return None

    # Data ------------------------------------------------------------------------
    @cached_property
    def dataset_classes(self) -> set[str]:
        out = set()
        for name, cls in self.classes.items():
            if any(b in data.DATASET_BASES or b.endswith(".Dataset") for b in cls.bases):
                out.add(name)
        return out

    @cached_property
    def constructions(self) -> list[data.Construction]:
        return data.collect_constructions(self.statements, self.qualify, self.dataset_classes)

    def construction(self, name: str, at: Optional[Stmt] = None, kind: Optional[str] = None) -> Optional[data.Construction]:
        """The last construction bound to `name` (before `at` when given)."""
        found = None
        for c in self.constructions:
            if c.name != name or (kind is not None and c.kind != kind):
                continue
            if at is not None and c.stmt.order > at.order:
                continue
            found = c
        return found

    # Lightning and torchmetrics (evallint/facts/lightning.py, metrics.py) -------------
    @cached_property
    def lightning(self) -> "lightning_facts.LightningFacts":
        return lightning_facts.LightningFacts(self)

    @cached_property
    def metrics(self) -> "metric_facts.MetricTable":
        return metric_facts.build(self)

    # Project view (other modules of the checked tree) --------------------------------
    @cached_property
    def _class_definitions(self) -> dict[str, list[scopes.ClassInfo]]:
        return resolve.class_definitions(self)

    def statement_order(self, node: cst.CSTNode) -> Optional[int]:
        """Source-order number of the statement that is (or holds the call) `node`."""
        stmt = self.index.stmt(node) or self._stmt_of_call(node)
        return stmt.order if stmt is not None else None

    def summary(self) -> dict:
        """This module's summary for the modules that import it (project view)."""
        from .summary import summarize
        return summarize(self)

    # Keras -----------------------------------------------------------------------
    @cached_property
    def keras(self) -> "keras_facts.KerasFacts":
        """Keras models, their output layer and compile settings, generators."""
        from . import keras as keras_facts
        return keras_facts.KerasFacts(self)

    # Model outputs (activation, last layer size) ------------------------------------
    @cached_property
    def outputs(self) -> "outputs_facts.OutputFacts":
        """What a PyTorch model's forward ends in: softmax, log_softmax, sigmoid, logits."""
        from . import outputs as outputs_facts
        return outputs_facts.OutputFacts(self)

    @cached_property
    def shapes(self) -> "shapes_facts.ShapeFacts":
        """Known tensor shapes: (N, 1) columns and (N,) vectors."""
        from . import shapes as shapes_facts
        return shapes_facts.ShapeFacts(self)

    # Losses (evallint/facts/losses.py) -------------------------------------------
    @cached_property
    def losses(self) -> list[_losses.LossInfo]:
        """Bound PyTorch loss objects, then the functional and inline ones in calls."""
        return self._bound_losses + [c.loss for c in self.loss_calls if c.loss.name is None]

    @cached_property
    def _bound_losses(self) -> list[_losses.LossInfo]:
        return _losses.collect_losses(self.statements, self.qualify)

    def loss_named(self, name: str, at: Stmt, _depth: int = 0) -> Optional[_losses.LossInfo]:
        """The loss object bound to `name` where `at` runs: the last binding before it
        (any binding of `self.x` in the class), or, for a parameter, the loss every
        in-file caller passes."""
        found = [l for l in self._bound_losses if l.name == name]
        if name.startswith("self."):
            same = {l.cls for l in found}
            return found[-1] if len(same) == 1 and len({l.reduction for l in found}) == 1 else None
        before = [l for l in found if l.stmt.order < at.order and l.stmt.function is at.function]
        if before:
            return before[-1]
        function = self.function_of(at)
        if function is not None and name in function.params:
            if _depth > 2:
                return None
            results = []
            for site in self.call_sites(function):
                arg = _argument_for(function, name, site.call)
                results.append(self.loss_named(arg.value, site.stmt, _depth + 1)
                               if isinstance(arg, cst.Name) else None)
            if results and all(r is not None for r in results) \
                    and len({(r.cls, r.reduction) for r in results}) == 1:
                return results[0]
            return None
        module_level = [l for l in found if l.stmt.function is None]
        return module_level[-1] if len(module_level) == 1 or (module_level and at.function is None) else None

    @cached_property
    def loss_calls(self) -> list[_losses.LossCall]:
        return _losses.collect_loss_calls(self.index.calls, self.qualify, self.loss_named)

    # Evaluation passes (evaluation.py) -----------------------------------------------
    @cached_property
    def evaluation(self) -> Evaluation:
        return Evaluation(self)

    @property
    def batch_loops(self) -> list[loops.LoopInfo]:
        """`for` and `while` loops over batches (loaders, data, index slices)."""
        return self.evaluation.batch_loops

    def loops_around(self, stmt: Stmt) -> list[loops.LoopInfo]:
        """`for` and `while` loops repeating `stmt`, innermost first."""
        return self.evaluation.loops_around(stmt)

    def trains(self, stmt: Stmt) -> bool:
        return self.evaluation.trains(stmt)

    def volatile_variable(self, stmt: Stmt) -> bool:
        return self.evaluation.volatile_variable(stmt)

    def sets_mode_inside(self, key: str, stmt: Stmt) -> bool:
        return self.evaluation.sets_mode_inside(key, stmt)

    # Where a dataset's samples go (splits.py) ---------------------------------------
    def narrowed_before_use(self, name: str, binding: Stmt) -> bool:
        return splits.narrowed_before_use(self, name, binding)

    def only_peeked(self, name: str, binding: Stmt) -> bool:
        return splits.only_peeked(self, name, binding)

    def trained_on(self, name: str, binding: Stmt, exclude: Optional[Stmt] = None) -> bool:
        return splits.trained_on(self, name, binding, exclude)

    def loops_train_on(self, name: str, binding: Stmt) -> bool:
        return splits.loops_train_on(self, name, binding)

    def array_trained_whole(self, name: str, after: Stmt) -> bool:
        return splits.array_trained_whole(self, name, after)

    def reported_as_evaluation(self, loop: loops.LoopInfo) -> Optional[str]:
        return splits.reported_as_evaluation(self, loop)

    def trained_and_evaluated(self) -> list:
        return splits.trained_and_evaluated(self)

    def held_out_overlaps_training(self, eval_copy: data.Construction, constructions) -> Optional[str]:
        return splits.held_out_overlaps_training(self, eval_copy, constructions)

    # What metric numbers count (counts.py) ------------------------------------------
    def is_batch_count(self, expr: cst.BaseExpression) -> bool:
        return counts.is_batch_count(self, expr)

    @cached_property
    def labels_scaled_by_hundred(self) -> bool:
        return counts.labels_scaled_by_hundred(self)


    # Loaders (evallint/facts/loaders.py) -----------------------------------------
    def loader_info(self, name: str, at: Stmt, _depth: int = 0) -> Optional[_loaders.LoaderInfo]:
        """The DataLoader bound to `name` where `at` runs (through in-file callers for a
        parameter); None when it cannot be told or callers disagree."""
        function = self.function_of(at)
        if function is not None and name in function.params:
            if _depth > 2:
                return None
            infos = []
            for site in self.call_sites(function):
                arg = _argument_for(function, name, site.call)
                infos.append(self.loader_info(arg.value, site.stmt, _depth + 1) if isinstance(arg, cst.Name) else None)
            if not infos or any(i is None for i in infos):
                return None
            keys = {(i.batch_size, i.drop_last, i.has_sampler, i.batches_len) for i in infos}
            return infos[0] if len(keys) == 1 else None
        c = self.construction(name, at, kind="loader")
        if c is None and function is not None and not any(name in s.stores for s in flow.scope_statements(self.index, at)):
            module_level = [x for x in self.constructions if x.name == name and x.kind == "loader"
                            and x.stmt.function is None]
            c = module_level[0] if len(module_level) == 1 else None  # a global built after the def
        if c is None:
            return None
        return _loaders.describe(c, lambda n: flow.assigned_value(self.index, n, c.stmt))


    # Accumulators (evallint/facts/accumulators.py) -------------------------------
    @cached_property
    def accumulator_analysis(self) -> "_accumulators.AccumulatorAnalysis":
        return _accumulators.AccumulatorAnalysis(self)

    @cached_property
    def accumulators(self) -> list[_accumulators.Accumulator]:
        """`name += value` in a batch loop, grouped per (loop, name), with what is added."""
        return self.accumulator_analysis.collect()

    def divisions_of(self, acc: _accumulators.Accumulator) -> list[_accumulators.Division]:
        """Where an accumulator is divided (after its first update), and by what."""
        return self.accumulator_analysis.divisions(acc)

    # Model outputs (evallint/facts/predictions.py) -------------------------------
    def model_output(self, expr: cst.BaseExpression, at: Stmt) -> Optional[_predictions.Output]:
        """If `expr` is a model's raw output (`model(x)`, or a name bound to it, through
        shape-only reshapes), which model and how it is trained."""
        return _predictions.model_output(self, expr, at)

    @cached_property
    def model_losses(self) -> dict[str, list[_losses.LossInfo]]:
        return _predictions.losses_by_model(self)
    # Epoch loops, selection and transforms (topic modules) -------------------------
    @cached_property
    def mode_leaks(self):
        """`model.eval()` in a loop that a later training step reaches without train()."""
        from . import epochs
        return epochs.mode_leaks(self)

    @cached_property
    def eval_optimizer_steps(self):
        """`optimizer.step()` inside evaluation loops (training on evaluation data)."""
        from . import epochs
        direct = epochs.eval_optimizer_steps(self)
        return direct + epochs.eval_phase_steps(self, {id(s.call) for s in direct})

    @cached_property
    def selections(self):
        """Checkpointing, early stopping and LR scheduling, with the data that drives them."""
        from . import selection
        return selection.selections(self)

    @cached_property
    def transform_attachments(self):
        """`transform=` arguments of dataset constructions, described (random? normalises?)."""
        from . import transforms
        return transforms.attachments(self)

    @cached_property
    def leaky_fits(self):
        """Preprocessing fitted on evaluation data or on all data before the split."""
        from . import transforms
        return transforms.leaky_fits(self)

    @cached_property
    def untransformed_predictions(self):
        """Predictions on evaluation arrays that skipped the preprocessor fitted on training data."""
        from . import transforms
        return transforms.untransformed_predictions(self)

    @cached_property
    def stale_reads(self):
        """Evaluation loops reading names that only the training loop defines."""
        from . import epochs
        return epochs.stale_reads(self)

    @cached_property
    def eval_drop_last(self):
        """`drop_last=True` on loaders of evaluation data."""
        from . import eval_loaders
        return eval_loaders.eval_drop_last(self)

    @cached_property
    def eval_distributed_samplers(self):
        """`DistributedSampler` on evaluation data with no de-duplication in sight."""
        from . import eval_loaders
        return eval_loaders.eval_distributed_samplers(self)

    @cached_property
    def named_eval_transforms(self):
        """Transforms bound to an evaluation name (`test_transform = Compose([...])`)."""
        from . import transforms
        return transforms.named_eval_transforms(self)


def _looks_like_optimizer(name: str) -> bool:
    n = last_part(name).lower()
    return any(k in n for k in ("opt", "optim", "optimizer", "sgd", "adam", "scaler"))


def _strip_device_calls(expr) -> Optional[cst.Call]:
    """`Net().to(device).eval()` -> `Net()`."""
    while isinstance(expr, cst.Call):
        mc = method_call(expr)
        if mc is not None and mc[1] in _DEVICE_METHODS and isinstance(mc[0], cst.Call):
            expr = mc[0]
            continue
        return expr
    return None


def _calls_in(call: cst.Call) -> list[cst.Call]:
    from .walk import walk
    return [n for n in walk(call) if isinstance(n, cst.Call) and n is not call]


def _argument_for(function: scopes.FunctionInfo, param: str, call: cst.Call):
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == param:
            return arg.value
    i = function.param_index(param)
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if i is not None and 0 <= i < len(positional):
        return positional[i].value
    return None


def _same_model(called: str, key: str) -> bool:
    if called == key:
        return True
    # self.eval() switches every submodule; model.module is the DDP-wrapped model.
    if called == "self" and key.startswith("self."):
        return True
    return key == f"{called}.module" or called == f"{key}.module"

