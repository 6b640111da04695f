"""Evaluation passes: which loops iterate over batches, which code evaluates a model,
and the forward passes the rules check.

A pass is recognised by names (a loop over `val_loader`, a function `evaluate`), by
context (`torch.no_grad()`, a Lightning step) and by behaviour: code that runs a
model and scores its output against labels without training on it. Loops are `for`
loops over loaders or data, index loops that slice tensors (`X[i:i + bs]`) and
`while` loops that do the same; a forward pass over a whole test tensor is a pass
of its own (a full-batch evaluation). Training code (backward, an optimizer step,
a helper that trains) is never an evaluation pass, whatever its names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Optional

import libcst as cst

from . import loops, models, scopes
from .exprs import dotted, last_part
from .index import Stmt
from .walk import walk

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts

# Calls that score predictions against labels (their names, snake-cased).
_METRIC_CALL = re.compile(r"(?:^|_)(?:acc|accuracy|error|errors|mae|mse|rmse|f1|precision|recall|auc|score|"
                          r"scores|loss|criterion|metric|metrics|iou|dice|correct|psnr|ssim|bleu|perplexity|"
                          r"cross_entropy|nll|l1|l2|distance)(?:_|$)|^(?:acc|loss|crit)")
# Model-named methods that build or fetch a model rather than run it.
_ACCESSOR = re.compile(r"^(?:get|build|load|make|create|init|setup|set|prepare|wrap|to|save|export)_")
# Data names that hold evaluation inputs for a full-batch pass (`test_X`, `X_val`, `val_images`).
# (Singular names such as `test_image` are one sample: an inference, not a pass.)
_EVAL_TENSOR = re.compile(r"^(?:test|val|valid|validation|eval|holdout|dev)_?(?:x|y|xs|data|set|inputs?|"
                          r"images|imgs|features|feats|samples|tensors|batch|seqs|sequences|points)?\d*$"
                          r"|^(?:x|xs|inputs?|images|imgs|features|feats|data|samples|seqs)_?"
                          r"(?:test|val|valid|validation|eval|holdout|dev)\d*$", re.I)
# Calls that train (or may train) the model, in code we cannot see.
_TRAINING_CALL = re.compile(r"(?:^|_)(?:train|training|fit|backward|optimi[sz]e|optimizer|learn|step|"
                            r"update_(?:param|params|parameters|weights|model))(?:_|$)")
# A comment that heads an evaluation section of a script or notebook.
_EVAL_COMMENT = re.compile(r"^#+\s*(?:\d+[.)]?\s*)?(?:test|testing|evaluat\w*|validat\w*|inference|"
                           r"predict\w*)\b", re.I)
# Names of optimizers handed to a function (`model_opt`, `optimizer`, `sgd`).
_OPTIMIZER_NAME = re.compile(r"(?:^|_)(?:opt|optim|optimizer|optimiser|sgd|adam|adamw)(?:_|$|\d)")
# Functions that compute a training objective.
_LOSS_FUNCTION = re.compile(r"(?:^|_)(?:loss|losses|objective|criterion|cost|forward|step)(?:_|$)")
# Project helpers used as `with helper(model):` that switch to evaluation mode.
_MODE_HELPER = re.compile(r"(?:^|_)(?:eval_mode|evaluation_mode|evaluating|inference_mode|no_grad|eval_context|"
                          r"training_mode|train_mode)$")
# Methods that cut a batch out of a tensor: `X.narrow(0, i, bs)`, `X.index_select(0, idx)`.
_SLICING_METHODS = {"narrow", "index_select", "take", "gather"}
# `_header_shapes` bits: a node that could score predictions; a subscript or slicing method.
_SCORES, _SLICES = 1, 2
# torch.nn losses are modules too, but calling one is not a forward pass of the model.
_LOSS_SUFFIXES = ("Loss", "loss")


@dataclass(eq=False)
class EvalPass:
    loop: Optional[loops.LoopInfo]  # the outermost evaluation loop around the forward pass
    call: cst.Call                  # the forward pass
    model: str                      # the model's dotted name, e.g. "model" or "self.net"
    stmt: Stmt                      # the statement holding the call
    reason: str                     # why this is evaluation code ("lightning" for Lightning steps)

    @property
    def region(self) -> Stmt:
        """The statement to guard: the loop, or the statement of a full-batch pass."""
        return self.loop.stmt if self.loop is not None else self.stmt

    @property
    def full_batch(self) -> bool:
        return self.loop is None


class Evaluation:
    """The evaluation facts of one module (built lazily from its `ModuleFacts`)."""

    def __init__(self, facts: "ModuleFacts") -> None:
        self.facts = facts

    # Loops ---------------------------------------------------------------------------
    @cached_property
    def all_loops(self) -> list[loops.LoopInfo]:
        """`for` and `while` loops, in source order."""
        f = self.facts
        whiles = [loops.make_loop(s, f.qualify) for s in f.statements if isinstance(s.node, cst.While)]
        return sorted([*f.loops, *whiles], key=lambda l: l.stmt.order)

    @cached_property
    def _loop_by_stmt(self) -> dict[int, loops.LoopInfo]:
        return {id(l.stmt): l for l in self.all_loops}

    def loops_around(self, stmt: Stmt) -> list[loops.LoopInfo]:
        """The loops whose body repeats `stmt`, innermost first, within its function
        (a loop's `else:` clause runs once after it and is not inside it)."""
        out = []
        child = stmt
        for a in stmt.ancestors():
            if a.is_function:
                break
            info = self._loop_by_stmt.get(id(a))
            if info is not None and child.block is a.blocks.get("body"):
                out.append(info)
            child = a
        return out

    @cached_property
    def batch_loops(self) -> list[loops.LoopInfo]:
        return [l for l in self.all_loops if self.is_batch_loop(l)]

    def is_batch_loop(self, loop: loops.LoopInfo) -> bool:
        """Does the loop iterate over batches of data (not epochs or indices alone)?"""
        key = id(loop)
        cached = self._batch_cache.get(key)
        if cached is None:
            cached = self._batch_cache[key] = self._is_batch_loop(loop)
        return cached

    @cached_property
    def _batch_cache(self) -> dict[int, bool]:
        return {}

    def _in_model_method(self, stmt: Stmt) -> bool:
        function = self.facts.function_of(stmt)
        if function is None or function.class_stmt is None:
            return False
        cls = self.facts.classes.get(function.class_stmt.node.name.value)
        return cls is not None and models.is_module_class(cls, self.facts.classes) \
            and not models.is_lightning_class(cls, self.facts.classes)

    def _iterates_data(self, loop: loops.LoopInfo) -> bool:
        """Is the loop's iterable a loader or data set, by construction or by name?"""
        f = self.facts
        name = loop.iter_name
        if name is not None:
            base = last_part(name.rstrip("[]"))
            if f.construction(base, loop.stmt, kind="loader") is not None:
                return True
            p = f.patterns
            if p.is_loader(base) or p.is_eval_data(base) or p.is_train_data(base):
                return True
        return False

    def _is_batch_loop(self, loop: loops.LoopInfo) -> bool:
        if self._iterates_data(loop):
            return True
        if not loop.is_while and len(loop.targets) >= 2 and any(self.model_calls(loop.stmt)):
            return True
        return self.slices_into_model(loop)

    def slices_into_model(self, loop: loops.LoopInfo) -> bool:
        """An index loop: `for i in range(0, len(X), bs): model(X[i:i + bs])`, or a
        `while` loop that pops indices. A tensor indexed by a name the loop binds
        (directly or through `xb = X[i:i + bs]`) reaches a model call in its body."""
        if not any(self._header_shapes(s) & _SLICES
                   for s in self.facts.index.statements[loop.stmt.order + 1: loop.stmt.end_order + 1]):
            return False  # nothing is sliced or indexed in the loop at all
        body = [s for s in self._own_statements(loop)]
        index_names = set(loop.targets)
        for s in body:
            index_names |= s.stores
        if not index_names:
            return False
        sliced: set[str] = set()
        for s in body:  # names bound to a slice, in order
            node = s.node
            if isinstance(node, (cst.Assign, cst.AnnAssign)) and node.value is not None \
                    and _slices_by(node.value, index_names | sliced):
                sliced |= s.stores
        for call, key, s in self.model_calls(loop.stmt):
            if self.loops_around(s)[:1] != [loop]:
                continue
            for arg in call.args:
                if _slices_by(arg.value, index_names) or any(
                        isinstance(n, cst.Name) and n.value in sliced for n in walk(arg.value)):
                    return True
        return False

    def _own_statements(self, loop: loops.LoopInfo) -> list[Stmt]:
        """Statements repeated by the loop and by no loop nested in it."""
        f = self.facts
        out = []
        for s in f.index.statements[loop.stmt.order + 1: loop.stmt.end_order + 1]:
            if s.function is not loop.stmt.function:
                continue
            if self.loops_around(s)[:1] == [loop]:
                out.append(s)
        return out

    def innermost_batch_loop(self, stmt: Stmt) -> Optional[loops.LoopInfo]:
        for l in self.loops_around(stmt):
            if self.is_batch_loop(l):
                return l
        return None

    def is_eval_data_loop(self, loop: loops.LoopInfo) -> bool:
        name = loop.iter_name
        return name is not None and self.facts.patterns.is_eval_data(last_part(name.rstrip("[]")))

    # Model calls ---------------------------------------------------------------------
    def model_calls(self, stmt: Stmt) -> list[tuple[cst.Call, str, Stmt]]:
        """Forward passes inside a statement; calls of loss modules are not. Callers
        must not modify the list (memoised: loops are asked about many times)."""
        found = self._model_calls.get(id(stmt))
        if found is None:
            found = self._model_calls[id(stmt)] = [
                (c, k, s) for c, k, s in self.facts.model_calls(stmt)
                if not self._is_loss_module(k, s) and not _ACCESSOR.match(_snake(last_part(k)))]
        return found

    @cached_property
    def _model_calls(self) -> dict[int, list[tuple[cst.Call, str, Stmt]]]:
        return {}  # id(stmt) -> its forward passes

    def _is_loss_module(self, key: str, at: Stmt) -> bool:
        if last_part(key).lower().endswith(("loss", "criterion")):
            return True
        call = self.facts.model_binding_call(key, at) if "." not in key else None
        return call is not None and last_part(self.facts.qualify(call.func) or "").endswith(_LOSS_SUFFIXES)

    # Training ------------------------------------------------------------------------
    def trains(self, stmt: Stmt, _depth: int = 0) -> bool:
        """Does the code train: backward, an optimizer step, autograd.grad, a call of
        an in-file function that does, a call named like training (`train_step`,
        `fit`, `update`) that we cannot see into, or one handed the optimizer?"""
        f = self.facts
        if f.backprops_in(stmt):
            return True
        for call, _ in f.calls_within(stmt):
            name = dotted(call.func)
            if name is None:
                continue
            short = last_part(name)
            if _TRAINING_CALL.search(_snake(short)):
                return True
            if any(type(a.value) is cst.Name and _OPTIMIZER_NAME.search(a.value.value.lower()) for a in call.args):
                return True  # `loss_scaler(loss, optimizer)`: the step runs inside the call
            if _depth < 2:
                for fn in f.functions.get(short, []):
                    if fn.stmt is not stmt.function and self.trains(fn.stmt, _depth + 1):
                        return True
        return False

    # Behaviour -----------------------------------------------------------------------
    def scores_model_output(self, scope: Stmt) -> bool:
        """Does the code run a model and score its output against labels: a
        comparison, a metric or loss call, or an absolute/squared difference of a
        value computed from the model's output?"""
        f = self.facts
        stmts = [scope, *f.index.statements[scope.order + 1: scope.end_order + 1]]
        stmts = [s for s in stmts if s is scope or not _in_nested_function(s, scope)
                 and not (s.is_function or isinstance(s.node, cst.ClassDef))]
        if not any(self._header_shapes(s) & _SCORES for s in stmts):
            return False  # no comparison, metric call or difference at all: cheap way out
        if not any(self._is_forward(c, s) for s in stmts for c in s.calls):
            return False
        tainted: set[str] = set()
        for _ in range(2):  # twice: values carried around a loop
            for s in stmts:
                if s.is_function or isinstance(s.node, cst.ClassDef):
                    continue
                if any(self._is_forward(c, s) for c in s.calls) or s.loads & tainted:
                    tainted |= s.stores
        for s in stmts:
            if s.is_function or isinstance(s.node, cst.ClassDef):
                continue
            header = _header_nodes(s)
            for node in (n for h in header for n in walk(h)):
                if isinstance(node, cst.Comparison) and len(node.comparisons) == 1 \
                        and isinstance(node.comparisons[0].operator, (cst.Equal, cst.NotEqual)):
                    sides = (node.left, node.comparisons[0].comparator)
                    from_model = [self._from_model(x, tainted, s) for x in sides]
                    # one side from the model, the other labels (not a constant: `label == 1`)
                    if any(from_model) and not all(from_model) and all(_not_constant(x) for x in sides):
                        return True
                elif isinstance(node, cst.Call):
                    short = _snake(last_part(dotted(node.func) or ""))
                    if short and _METRIC_CALL.search(short) and any(
                            _mentions(a.value, tainted) or any(self._is_forward(c, s) for c in _calls(a.value))
                            for a in node.args):
                        return True
                    if short in ("abs", "pow", "square") and _difference_of(node, tainted):
                        return True
                elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Power) \
                        and _difference_of(node.left, tainted):
                    return True
        return False

    def _header_shapes(self, stmt: Stmt) -> int:
        """What a statement's own expressions hold, as `_SCORES | _SLICES` bits."""
        shapes = self._shapes_memo.get(id(stmt))
        if shapes is None:
            shapes = 0
            for h in _header_nodes(stmt):
                for n in walk(h):
                    if _scoring_shape(n):
                        shapes |= _SCORES
                    if isinstance(n, cst.Subscript) or (isinstance(n, cst.Attribute)
                                                        and n.attr.value in _SLICING_METHODS):
                        shapes |= _SLICES
            self._shapes_memo[id(stmt)] = shapes
        return shapes

    @cached_property
    def _shapes_memo(self) -> dict[int, int]:
        # id(stmt) -> its `_header_shapes`: loops and functions nest, and each asks
        # about every statement inside it; one walk per statement answers them all.
        return {}

    def _from_model(self, expr: cst.CSTNode, tainted: set[str], stmt: Stmt) -> bool:
        return _mentions(expr, tainted) or any(self._is_forward(c, stmt) for c in _calls(expr))

    def _is_forward(self, call: cst.Call, stmt: Stmt) -> bool:
        known = self._forward_memo.get(id(call))
        if known is None:
            key = self.facts.model_key(call) if dotted(call.func) is not None else None
            known = key is not None and not self._is_loss_module(key, stmt) \
                and not _ACCESSOR.match(_snake(last_part(key)))
            self._forward_memo[id(call)] = known
        return known

    @cached_property
    def _forward_memo(self) -> dict[int, bool]:
        return {}

    def is_eval_by_behaviour(self, function: scopes.FunctionInfo) -> bool:
        """A function that scores a model's output against labels and never trains
        (`compute_accuracy`, `compute_nb_errors`, `NNTest`)."""
        key = id(function)
        if key not in self._behaviour_cache:
            self._behaviour_cache[key] = self._function_evaluates(function)
        return self._behaviour_cache[key]

    @cached_property
    def _behaviour_cache(self) -> dict[int, bool]:
        return {}

    def _function_evaluates(self, function: scopes.FunctionInfo) -> bool:
        f = self.facts
        if function.name in ("forward", "__init__", "__call__", "training_step") or function.name.startswith("_"):
            return False
        if function.class_stmt is not None:
            cls = f.classes.get(function.class_stmt.node.name.value)
            if cls is not None and models.is_module_class(cls, f.classes):
                return False  # a model's own methods are part of the model
        if f.is_test_file and function.name.startswith("test"):
            return False
        if _LOSS_FUNCTION.search(_snake(function.name)) or not self.scores_model_output(function.stmt) \
                or self.trains(function.stmt):
            return False  # `compute_loss(model, x, y)` is what a training step calls
        return not self._called_inside_training(function)  # else its result trains the model

    def _called_inside_training(self, function: scopes.FunctionInfo) -> bool:
        """Is every in-file call of the function a training call: inside training, or
        handing it what trains (an optimizer, an in-file object whose methods step one:
        `run_epoch(dl, model, SimpleLossCompute(gen, crit, model_opt))`)? A function
        that one call trains with and another evaluates with is an evaluation too."""
        sites = self.facts.call_sites(function)
        return bool(sites) and all(self._site_trains(site) for site in sites)

    def _site_trains(self, site: scopes.CallSite) -> bool:
        """A call made inside training, whose result is backpropagated, or that hands
        the function an optimizer (some other call of it may still evaluate)."""
        f = self.facts
        around = self.loops_around(site.stmt)
        if self._feeds_backward(site.stmt) or (around and f.backprops_in(around[-1].stmt)):
            return True
        for arg in site.call.args:
            for n in walk(arg.value):
                if isinstance(n, cst.Name) and _OPTIMIZER_NAME.search(n.value.lower()):
                    return True
                if isinstance(n, cst.Call) and isinstance(n.func, cst.Name) and n.func.value in f.classes \
                        and f.backprops_in(f.classes[n.func.value].stmt):
                    return True
        return False

    def loop_evaluates(self, loop: loops.LoopInfo) -> Optional[str]:
        """Why a batch loop outside any named evaluation context evaluates, by what it
        does: it scores the model's output (or sits under an evaluation comment, or
        was dedented out of the `no_grad` block that holds its set-up) and never
        trains."""
        if self.trains(loop.stmt):
            return None
        function = self.facts.function_of(loop.stmt)
        if self.facts.is_test_file and function is not None and function.name.startswith("test"):
            return None  # a pytest test that runs a model checks it; it is no evaluation pass
        if function is not None and self._called_inside_training(function):
            return None  # `run_epoch(loader, model, loss_compute_with_optimizer)` trains too
        if self.dedented_from_no_grad(loop):
            return "dedented out of `with torch.no_grad()`"
        if not any(self.model_calls(loop.stmt)):
            return None
        if self.scores_model_output(loop.stmt):
            return "the loop scores the model's output and does not train"
        comment = self.section_comment(loop.stmt)
        if comment is not None:
            return f"under `{comment}`"
        return None

    def dedented_from_no_grad(self, loop: loops.LoopInfo) -> bool:
        """`with torch.no_grad():` holding only the loop's initialisations, right before
        a loop that scores the model: the loop was meant to be inside."""
        s = loop.stmt
        if s.index == 0:
            return False
        prev = s.block[s.index - 1]
        if not (isinstance(prev.node, cst.With)
                and any(self.facts.gradients.is_no_grad_item(i.item, prev) for i in prev.node.items)):
            return False
        body = prev.blocks.get("body", [])
        if not body or not all(isinstance(b.node, (cst.Assign, cst.AnnAssign)) and not self.model_calls(b)
                               for b in body):
            return False  # only set-up (`correct = 0`, `seen = torch.zeros(10)`) was left inside
        initialised = set().union(*(b.stores for b in body))
        used = set().union(*(x.loads for x in self.facts.index.statements[s.order: s.end_order + 1]))
        return bool(initialised & used) and any(self.model_calls(s)) and self.scores_model_output(s)

    def section_comment(self, stmt: Stmt) -> Optional[str]:
        """The comment above `stmt` or above the simple set-up lines right before it
        (`model.eval()`, `correct = 0`), if it heads an evaluation section (`# Test`,
        `# Evaluate the model`); a notebook cell's first comment counts the same."""
        block = stmt.block
        for i in range(stmt.index, -1, -1):
            s = block[i]
            if i < stmt.index and s.line_node is None:
                return None  # a compound statement in between: another section
            node = s.line_node or s.node
            for line in reversed(getattr(node, "leading_lines", ())):
                if line.comment is not None:
                    text = line.comment.value
                    return text if _EVAL_COMMENT.match(text) else None
        return None

    def volatile_variable(self, stmt: Stmt) -> bool:
        """`Variable(x, volatile=True)` inside `stmt`: a no-op since PyTorch 0.4 (it
        does not disable gradients, and nothing here treats it as if it did)."""
        for call, _ in self.facts.calls_within(stmt):
            if last_part(self.facts.qualify(call.func) or dotted(call.func)) == "Variable" and any(
                    a.keyword is not None and a.keyword.value == "volatile" for a in call.args):
                return True
        return False

    def mode_managed(self, stmt: Stmt) -> bool:
        """Inside a project's own mode switch, `with eval_mode(model):` (MONAI) or
        `with self._set_training_mode(False):` (Poutyne): such helpers set eval mode and
        turn gradients off together; what they do cannot be seen here, so stay quiet."""
        for a in stmt.ancestors():
            if a.is_function:
                return False
            if isinstance(a.node, cst.With):
                for item in a.node.items:
                    call = item.item
                    if not isinstance(call, cst.Call) or (self.facts.qualify(call.func) or "").startswith("torch."):
                        continue  # torch's own switches are modelled exactly elsewhere
                    short = _snake(last_part(dotted(call.func) or ""))
                    if _MODE_HELPER.search(short):
                        flag = call.args[0].value if call.args else None
                        if "training" in short or "train_mode" in short:
                            if isinstance(flag, cst.Name) and flag.value == "False":
                                return True
                        else:
                            return True
        return False

    def sets_mode_inside(self, key: str, stmt: Stmt) -> bool:
        """Does the code switch the model's mode inside `stmt` itself (e.g. `model.eval()`
        in the loop body)? Then the author manages the mode per batch."""
        for call, _ in self.facts.calls_within(stmt):
            mc = models.mode_call(call)
            if mc is not None and (mc[0] == key or (mc[0] == "self" and key.startswith("self."))):
                return True
        return False

    # Evaluation contexts ---------------------------------------------------------------
    def eval_context(self, stmt: Stmt) -> Optional[str]:
        """Why a statement counts as evaluation code, or None. Lightning steps are
        reported as "lightning"."""
        f = self.facts
        for loop in self.loops_around(stmt):
            if self.is_eval_data_loop(loop):
                return f"loop over `{loop.iter_name}`"
        function = f.function_of(stmt)
        if function is not None:
            if f.is_lightning_step(function):
                return "lightning"
            if (f.patterns.is_eval_function(function.name) and not f.is_training_function(function)
                    and not (f.is_test_file and function.name.startswith("test"))):
                return f"function `{function.name}`"
        if f.under_no_grad_block(stmt) or (function is not None and f.no_grad_decorated(function)):
            return "no_grad"
        if function is not None and self.is_eval_by_behaviour(function):
            return f"`{function.name}` scores the model's output and does not train"
        return None

    def _loop_reason(self, loop: loops.LoopInfo) -> Optional[str]:
        if self.dedented_from_no_grad(loop) and not self.trains(loop.stmt):
            return "dedented out of `with torch.no_grad()`"  # the most useful thing to say
        if self.is_eval_data_loop(loop):
            return f"loop over `{loop.iter_name}`"
        return self.eval_context(loop.stmt) or self.loop_evaluates(loop)

    @cached_property
    def eval_passes(self) -> list[EvalPass]:
        """Forward passes of a model in evaluation code: the first call per model in
        each outermost evaluation loop over batches, and full-batch passes (a model
        run on a whole test tensor) outside any batch loop. Code that trains is never
        an evaluation pass, whatever its names."""
        out = []
        reasons: dict[int, Optional[str]] = {}
        for loop in self.batch_loops:
            reason = self._loop_reason(loop)
            if reason is not None and self.facts.backprops_in(loop.stmt):
                reason = None
            if reason == "no_grad" and self._in_model_method(loop.stmt):
                reason = None  # a module's own method under no_grad: its caller owns the mode
            if reason == "no_grad" and not self._iterates_data(loop):
                # an index loop under no_grad alone may decode or sample: it must score to count
                reason = self.loop_evaluates(loop) and "no_grad"
            reasons[id(loop)] = reason
        for loop in self.batch_loops:
            reason = reasons[id(loop)]
            if reason is None or self.mode_managed(loop.stmt):
                continue
            if any(reasons.get(id(outer)) for outer in self.loops_around(loop.stmt)):
                continue  # covered by the outer evaluation loop
            seen = set()
            for call, key, stmt in self.model_calls(loop.stmt):
                if key not in seen:
                    seen.add(key)
                    out.append(EvalPass(loop, call, key, stmt, reason))
        out.extend(self.full_batch_passes)
        out.sort(key=lambda p: p.stmt.order)
        return out

    @cached_property
    def full_batch_passes(self) -> list[EvalPass]:
        """`model.eval(); predictions = model(test_X)`: a forward pass over whole
        evaluation tensors, outside any batch loop, whose output never reaches a
        backward pass. Evidence: an argument named like evaluation data, or an
        evaluation function around it (never a model's own method)."""
        f = self.facts
        out = []
        seen: set[tuple] = set()
        for call, stmt in f.index.calls:
            if stmt.line_node is None or not call.args or not self._may_hold_full_batch_pass(call, stmt):
                continue  # cheap tests first: resolving a model name is the costly part
            if any(self.is_batch_loop(l) for l in self.loops_around(stmt)):
                continue
            key = f.model_key(call)
            if key is None or self._is_loss_module(key, stmt):
                continue
            reason = self._full_batch_reason(call, stmt)
            if reason is None or (id(stmt.block), key) in seen or self.mode_managed(stmt):
                continue
            if self._feeds_backward(stmt) or f.needs_gradients(stmt) or _detached(call, stmt):
                continue  # gradients are used, or the author drops the graph on purpose
            around = self.loops_around(stmt)
            if around and self.trains(around[-1].stmt) and not _eval_named_args(call, f.patterns):
                continue
            seen.add((id(stmt.block), key))
            out.append(EvalPass(None, call, key, stmt, reason))
        return out

    def _may_hold_full_batch_pass(self, call: cst.Call, stmt: Stmt) -> bool:
        """Evaluation tensors among the arguments, or an evaluation function around."""
        if dotted(call.func) is None:
            return False
        if any(_EVAL_TENSOR.match(n) for n in _arg_roots(call)):
            return True
        function = self.facts.function_of(stmt)
        if function is None or self.facts.model_key(call) is None:
            return False  # no model call: no pass, whatever the function (its context is the costly part)
        key = id(function)
        if key not in self._function_context:
            self._function_context[key] = self.eval_context(function.stmt) is not None \
                or self.facts.patterns.is_eval_function(function.name)
        return self._function_context[key]

    @cached_property
    def _function_context(self) -> dict[int, bool]:
        return {}

    def _full_batch_reason(self, call: cst.Call, stmt: Stmt) -> Optional[str]:
        f = self.facts
        names = _arg_names(call)
        if any(f.patterns.is_train_data(n) for n in names):
            return None
        function = f.function_of(stmt)
        if function is not None:
            if function.name in ("forward", "__call__", "training_step") or f.is_lightning_step(function):
                return None
            if function.class_stmt is not None:
                cls = f.classes.get(function.class_stmt.node.name.value)
                if cls is not None and models.is_module_class(cls, f.classes):
                    return None
            if f.is_training_function(function) or self.trains(function.stmt):
                if not _eval_named_args(call, f.patterns):
                    return None
        evaluated = [n for n in _arg_roots(call) if _EVAL_TENSOR.match(n)]
        if evaluated:
            return f"full-batch pass over `{evaluated[0]}`"
        context = self.eval_context(stmt)
        if context is None or context in ("no_grad", "lightning") or function is None:
            return None
        if not self.scores_model_output(function.stmt):
            return None  # `def predict(model, x): return model(x)`: the caller decides
        if self._called_inside_training(function):
            return None  # a per-batch score of the training step
        return f"full-batch pass in {context}" if context.startswith("function") else context

    def _feeds_backward(self, stmt: Stmt) -> bool:
        """Does the value computed by `stmt` reach a backward pass later in its scope?"""
        f = self.facts
        tainted = set(stmt.stores)
        if not tainted:
            return False
        for s in f.index.function_body(stmt.function):
            if s.order <= stmt.order:
                continue
            if s.loads & tainted:
                for call in s.calls:
                    short = last_part(dotted(call.func) or "")
                    if short in ("backward", "grad", "manual_backward") and (
                            _mentions(call.func, tainted) or any(_mentions(a.value, tainted) for a in call.args)):
                        return True
                tainted |= s.stores
        return False


def _snake(name: str) -> str:
    from .patterns import snake
    return snake(name)


def _in_nested_function(stmt: Stmt, scope: Stmt) -> bool:
    return stmt.function is not (scope if scope.is_function else scope.function)


def _header_nodes(stmt: Stmt) -> list[cst.CSTNode]:
    """The expressions a statement itself holds (nested blocks excluded)."""
    node = stmt.node
    if isinstance(node, cst.For):
        return [node.iter]
    if isinstance(node, (cst.While, cst.If)):
        return [node.test]
    if isinstance(node, cst.With):
        return [i.item for i in node.items]
    if isinstance(node, (cst.Try, cst.TryStar, cst.FunctionDef, cst.ClassDef, cst.Match)):
        return []
    return [node]


def _calls(node: cst.CSTNode) -> list[cst.Call]:
    return [n for n in walk(node) if isinstance(n, cst.Call)]


def _detached(call: cst.Call, stmt: Stmt) -> bool:
    """`model(x).detach()`: the output is cut from the graph right away."""
    return any(isinstance(n, cst.Attribute) and n.value is call and n.attr.value in ("detach", "data")
               for n in walk(stmt.node))


def _scoring_shape(n: cst.CSTNode) -> bool:
    """A node that could score predictions (checked precisely afterwards)."""
    if isinstance(n, cst.Comparison):
        return any(isinstance(c.operator, (cst.Equal, cst.NotEqual)) for c in n.comparisons)
    if isinstance(n, cst.Call):
        short = _snake(last_part(dotted(n.func) or ""))
        return bool(short) and (bool(_METRIC_CALL.search(short)) or short in ("abs", "pow", "square"))
    return isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Power)


def _not_constant(expr: cst.CSTNode) -> bool:
    return any(isinstance(n, (cst.Name, cst.Attribute, cst.Subscript)) and not
               (isinstance(n, cst.Name) and n.value in ("True", "False", "None")) for n in walk(expr))


def _mentions(node: cst.CSTNode, names: set[str]) -> bool:
    return any(isinstance(n, cst.Name) and n.value in names for n in walk(node))


def _difference_of(node: cst.CSTNode, tainted: set[str]) -> bool:
    return any(isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Subtract)
               and _mentions(n, tainted) for n in walk(node))


def _slices_by(expr: cst.CSTNode, index_names: set[str]) -> bool:
    """`X[i:i + bs]`, `X[idx]`, `X.narrow(0, i, bs)` with an index from `index_names`."""
    for n in walk(expr):
        if isinstance(n, cst.Subscript) and dotted(n.value) is not None \
                and dotted(n.value).split(".")[0] not in index_names:
            if any(_mentions(el.slice, index_names) for el in n.slice):
                return True
        elif isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and n.func.attr.value in _SLICING_METHODS:
            if any(_mentions(a.value, index_names) for a in n.args):
                return True
    return False


def _arg_names(call: cst.Call) -> list[str]:
    """The data names given to a call (`model(test_X.to(device))` -> ["test_X", ...])."""
    out = []
    for a in call.args:
        for n in walk(a.value):
            if isinstance(n, cst.Name):
                out.append(n.value)
            elif isinstance(n, cst.Attribute):
                out.append(n.attr.value)
    return out


def _arg_roots(call: cst.Call) -> list[str]:
    """The tensors a call is given, by name: `model(test_X.to(device))` -> ["test_X"],
    `self.net(self.x_val)` -> ["x_val"]; keyword arguments such as `valid_lens=` are
    not the data."""
    out = []
    for a in call.args:
        if a.keyword is not None:
            continue
        expr = a.value
        while True:
            if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
                expr = expr.func.value  # test_X.to(device), X_test.float()
            elif isinstance(expr, cst.Subscript):
                expr = expr.value
            else:
                break
        name = dotted(expr)
        if name is not None:
            out.append(last_part(name))
    return out


def _eval_named_args(call: cst.Call, patterns) -> bool:
    return any(_EVAL_TENSOR.match(n) for n in _arg_roots(call))
