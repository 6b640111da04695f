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

from . import counts, data, loops, losses as _losses, models, scopes, splits
from . import lightning as lightning_facts
from . import metrics as metric_facts
from .evaluation import EvalPass, Evaluation
from .gradients import Gradients
from .model_modes import ModelModes
from . import accumulators as _accumulators, loaders as _loaders, predictions as _predictions
from .imports import Qualifier, import_aliases
from .index import ModuleIndex, Stmt
from .patterns import DEFAULT_PATTERNS, NamePatterns
from . import resolve  # project view and model bindings

__all__ = ["EvalPass", "ModuleFacts", "Stmt"]

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
        return self._qualifier(expr)

    @cached_property
    def _qualifier(self) -> Qualifier:
        return Qualifier(self.aliases)

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
        return self.call_lookup.sites(function)

    def calls_within(self, stmt: Stmt) -> list[tuple[cst.Call, Stmt]]:
        """All calls inside a statement, its nested blocks included."""
        return self.call_lookup.within(stmt)

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
        return self.gradients.backprops_in(stmt)

    def needs_gradients(self, stmt: Stmt) -> bool:
        return self.gradients.needs_gradients(stmt)

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

    # Gradients (gradients.py) ------------------------------------------------------
    @cached_property
    def gradients(self) -> Gradients:
        return Gradients(self)

    def under_no_grad_block(self, stmt: Stmt) -> bool:
        return self.gradients.under_no_grad_block(stmt)

    def no_grad_decorated(self, function: scopes.FunctionInfo) -> bool:
        return self.gradients.no_grad_decorated(function)

    def grad_disabled(self, stmt: Stmt, _depth: int = 0) -> bool:
        """Are gradients off when this statement runs?"""
        return self.gradients.grad_disabled(stmt, _depth)

    def parameters_frozen(self, key: str, at: Stmt) -> bool:
        return self.gradients.parameters_frozen(key, at)

    # Models and their modes (model_modes.py) ------------------------------------------
    @cached_property
    def model_modes(self) -> ModelModes:
        return ModelModes(self)

    def model_key(self, call: cst.Call) -> Optional[str]:
        """If the call runs a model's forward pass, the model's dotted name."""
        return self.model_modes.model_key(call)

    def model_calls(self, stmt: Stmt) -> list[tuple[cst.Call, str, Stmt]]:
        return self.model_modes.model_calls(stmt)

    def model_binding_call(self, name: str, at: Stmt) -> Optional[cst.Call]:
        return self.model_modes.model_binding_call(name, at)

    def class_sensitivity(self, class_name: str, _seen: Optional[set] = None, at: Optional[Stmt] = None) -> Optional[bool]:
        return self.model_modes.class_sensitivity(class_name, _seen, at)

    def model_sensitivity(self, key: str, at: Stmt, _depth: int = 0) -> Optional[bool]:
        """Does the model behind `key` contain train/eval-dependent layers? None: unknown."""
        return self.model_modes.model_sensitivity(key, at, _depth)

    def eval_mode_reaches(self, key: str, at: Stmt, _depth: int = 0) -> bool:
        """Is the model in eval mode when `at` runs (here or through every caller)?"""
        return self.model_modes.eval_mode_reaches(key, at, _depth)

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
        stmt = self.index.stmt(node) or self.model_modes.stmt_of_call(node)
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

    @cached_property
    def _bound_losses_by_name(self) -> dict[str, list[_losses.LossInfo]]:
        # name -> its bound losses, in order: every call of the module asks by name
        by_name: dict[str, list[_losses.LossInfo]] = {}
        for l in self._bound_losses:
            by_name.setdefault(l.name, []).append(l)
        return by_name

    def loss_named(self, name: str, at: Stmt, _depth: int = 0) -> Optional[_losses.LossInfo]:
        return _losses.loss_named(self, name, at, _depth)

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
        return _loaders.loader_info(self, name, at, _depth)


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

    @cached_property
    def call_lookup(self):
        """Calls by statement range and by callee name (no scan per question)."""
        from .call_lookup import CallLookup
        return CallLookup(self.index.calls)
