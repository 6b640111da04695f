"""Where a dataset's samples go: follow the data, not the name.

A dataset built with `train=True` for evaluation is fine when it is cut down to a
held-out part before anything reads it (`random_split`, `Subset`, a loader with an
index sampler, a helper that returns the held-out half); a loader over training
data that only lends one batch to a picture scores nothing; a name like
`train_part` may hold a split the model never trains on. These facts say what the
code does with a binding, so that rules stay quiet when it cannot be told.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from .exprs import dotted, keyword, last_part
from .index import Stmt
from .walk import walk

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts
    from .loops import LoopInfo

# Calls that keep only part of a dataset's samples.
_SPLITTERS = {"random_split", "Subset", "train_test_split", "split", "KFold", "StratifiedKFold",
              "SubsetRandomSampler", "select", "take", "shard", "filter"}
# Calls that read a dataset without using its samples.
_NEUTRAL = {"len", "print", "type", "isinstance", "repr", "str", "id", "getattr", "hasattr", "setattr"}


@dataclass(frozen=True)
class Use:
    stmt: Stmt
    kind: str          # "narrowed" | "whole" | "peek" | "neutral"


def _arg_is(call: cst.Call, name: str) -> bool:
    return any(dotted(a.value) == name for a in call.args)


def binding_uses(facts: "ModuleFacts", name: str, binding: Stmt) -> list[Use]:
    """How the statements after `binding` (before `name` is bound again) use it."""
    out = []
    root = name.split(".")[0]
    for s in facts.statements:
        if s.order <= binding.end_order:
            continue
        if root != "self" and name in s.stores and name not in s.loads:
            break
        if root not in s.loads and not (root == "self" and name in _dotted_reads(s)):
            continue
        if root != "self" and not _same_binding(facts, name, binding, s):
            continue
        out.append(Use(s, _use_kind(facts, name, s)))
    return out


def _dotted_reads(stmt: Stmt) -> set[str]:
    return {dotted(n) for h in _headers(stmt) for n in walk(h) if isinstance(n, cst.Attribute)} - {None}


def _same_binding(facts: "ModuleFacts", name: str, binding: Stmt, at: Stmt) -> bool:
    from .flow import last_assignment_before
    last = last_assignment_before(facts.index, name, at)
    return last is binding or (last is not None and last.order <= binding.order)


def _headers(stmt: Stmt) -> list[cst.CSTNode]:
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


def _use_kind(facts: "ModuleFacts", name: str, stmt: Stmt) -> str:
    kinds = []
    if isinstance(stmt.node, cst.For) and _iterates(stmt.node.iter, name):
        kinds.append("peek" if _breaks_at_once(stmt) else "whole")
    for call in stmt.calls:
        if not _arg_is(call, name):
            continue
        callee = facts.qualify(call.func) or dotted(call.func) or ""
        short = last_part(callee)
        if short in _NEUTRAL:
            kinds.append("neutral")
        elif short == "iter":
            kinds.append("peek" if _in_next(stmt, call) else "whole")
        elif short in _SPLITTERS:
            kinds.append("narrowed")
        elif short == "DataLoader" or callee.endswith(".DataLoader"):
            sampled = any(keyword(call, k) for k in ("sampler", "batch_sampler"))
            kinds.append("narrowed" if sampled else "whole")
        elif short in ("enumerate", "zip", "tqdm"):
            continue  # the loop header decides
        else:
            kinds.append("narrowed")  # a helper we cannot see into: it may return the held-out half
    if not kinds:
        return "neutral"
    for k in ("whole", "narrowed", "peek"):
        if k in kinds:
            return k
    return "neutral"


def _iterates(expr: cst.BaseExpression, name: str) -> bool:
    for _ in range(4):
        if dotted(expr) == name:
            return True
        if isinstance(expr, cst.Call) and expr.args and last_part(dotted(expr.func) or "") in (
                "enumerate", "tqdm", "iter", "zip", "track"):
            expr = expr.args[0].value
            continue
        return False
    return False


def _in_next(stmt: Stmt, call: cst.Call) -> bool:
    return any(isinstance(n, cst.Call) and dotted(n.func) == "next" and n.args and n.args[0].value is call
               for n in walk(stmt.node))


def _breaks_at_once(loop_stmt: Stmt) -> bool:
    """A `for` loop whose body ends in an unconditional `break`: it reads one item."""
    body = loop_stmt.blocks.get("body", [])
    return bool(body) and isinstance(body[-1].node, cst.Break)


def narrowed_before_use(facts: "ModuleFacts", name: str, binding: Stmt) -> bool:
    """Is the dataset only ever cut down (split, subset, sampled, handed to a helper)
    and never read whole?"""
    uses = [u for u in binding_uses(facts, name, binding) if u.kind != "neutral"]
    return bool(uses) and all(u.kind == "narrowed" for u in uses)


def only_peeked(facts: "ModuleFacts", name: str, binding: Stmt) -> bool:
    """Is the loader used only to pull a batch (`next(iter(loader))`, a loop that
    breaks after one item) on which no model runs: a picture, not a score?"""
    uses = [u for u in binding_uses(facts, name, binding) if u.kind != "neutral"]
    if not uses or any(u.kind != "peek" for u in uses):
        return False
    for u in uses:
        if isinstance(u.stmt.node, cst.For):
            if facts.model_calls(u.stmt):
                return False
            continue
        pulled = set(u.stmt.stores)
        for s in facts.index.function_body(u.stmt.function):
            if s.order <= u.stmt.order:
                continue
            rebound = (s.stores & pulled) - s.loads
            if rebound:
                pulled -= rebound  # `for images, labels in test_loader:` binds new batches
                continue
            if s.loads & pulled:
                if any(facts.model_key(c) is not None for c in s.calls):
                    return False
                pulled |= s.stores
    return True


def trained_on(facts: "ModuleFacts", name: str, binding: Stmt, exclude: Optional[Stmt] = None) -> bool:
    """Does training read this binding: a loader that is not named for evaluation
    wraps it, a loop that trains iterates it, or it is passed to `fit`/`train`?"""
    p = facts.patterns
    for c in facts.constructions:
        if c.stmt is exclude or c.kind != "loader" or c.stmt.order <= binding.order:
            continue
        data = c.dataset_expr()
        if data is not None and dotted(data) == name and _same_binding(facts, name, binding, c.stmt) \
                and not (p.is_eval_data(last_part(c.name)) and not p.is_train_data(last_part(c.name))):
            return True
    return loops_train_on(facts, name, binding) or _passed_to_training_call(facts, name, binding)


def loops_train_on(facts: "ModuleFacts", name: str, binding: Stmt) -> bool:
    for loop in facts.batch_loops:
        if loop.iter_name == name and loop.stmt.order > binding.order and facts.backprops_in(loop.stmt):
            return True
    return False


def _passed_to_training_call(facts: "ModuleFacts", name: str, binding: Stmt) -> bool:
    for call, s in facts.index.calls:
        if s.order <= binding.order or not _arg_is(call, name):
            continue
        short = last_part(dotted(call.func) or "").lower()
        if short in ("fit", "train", "fit_generator") or short.startswith("train_"):
            return True
    return False


def array_trained_whole(facts: "ModuleFacts", name: str, after: Stmt) -> bool:
    """After `after`, is the array `name` (never rebound) used whole for training:
    `model.fit(name, ...)`, a `TensorDataset(name, ...)` that training reads, or a
    model call on it inside a loop that trains?"""
    if any(name in s.stores for s in facts.statements if s.order > after.order):
        return False  # `X_train = X_train[n:]`: cut down afterwards, or rebound
    for call, s in facts.index.calls:
        if s.order <= after.order:
            continue
        args = [a.value for a in call.args]
        short = last_part(dotted(call.func) or "")
        if short in ("fit", "fit_generator") and args and dotted(args[0]) == name:
            return True
    for c in facts.constructions:
        if c.stmt.order <= after.order:
            continue
        if c.kind == "tensor_dataset" and _arg_is(c.call, name) and trained_on(facts, c.name, c.stmt):
            return True
        inner = c.dataset_expr()
        if c.kind == "loader" and isinstance(inner, cst.Call) and _arg_is(inner, name) \
                and last_part(facts.qualify(inner.func) or dotted(inner.func)) == "TensorDataset" \
                and (loops_train_on(facts, c.name, c.stmt) or _passed_to_training_call(facts, c.name, c.stmt)):
            return True  # DataLoader(TensorDataset(X_train, y_train)) read by training
    for loop in facts.batch_loops + [l for l in facts.loops if l not in facts.batch_loops]:
        if loop.stmt.order <= after.order or not facts.backprops_in(loop.stmt):
            continue
        for call, _, _ in facts.model_calls(loop.stmt):
            if any(dotted(a.value) == name for a in call.args):
                return True
    return False


def reported_as_evaluation(facts: "ModuleFacts", loop: "LoopInfo") -> Optional[str]:
    """The evaluation name a loop's score is reported under: a test/validation word
    in a string printed or logged after it (before the next loop), or else the name
    of its function (`test`, `validate`) when that function scores nothing else."""
    p = facts.patterns
    scope = facts.index.function_body(loop.stmt.function)
    for s in scope:
        if s.order <= loop.stmt.end_order:
            continue
        if isinstance(s.node, (cst.For, cst.While)):
            break
        for n in (n for h in _headers(s) for n in walk(h)):
            if isinstance(n, (cst.SimpleString, cst.FormattedStringText)):
                text = n.value.lower()
                if "train" in text:
                    return None
                for word in ("test", "valid", "val ", "val_", "val:", "eval"):
                    if word in text:
                        return f"reported as `{_text(n)[:40]}`"
    function = facts.function_of(loop.stmt)
    if function is None or not p.is_eval_function(function.name) or "train" in function.name.lower():
        return None
    for s in scope:
        if any(isinstance(n, (cst.SimpleString, cst.FormattedStringText)) and "train" in n.value.lower()
               for h in _headers(s) for n in walk(h)):
            return None
    for other in facts.batch_loops:
        if other is not loop and other.stmt.function is loop.stmt.function and facts.is_eval_data_loop(other):
            return None  # it scores the evaluation data too: the training pass is labelled apart
    return f"function `{function.name}`"


def _text(node: cst.CSTNode) -> str:
    if isinstance(node, cst.SimpleString):
        return str(node.evaluated_value).strip()
    return node.value.strip()


@dataclass(frozen=True)
class RandomSplit:
    stmt: Stmt
    lengths: str             # the lengths argument as written
    seed: Optional[str]      # the generator argument or the last manual_seed before, as written
    kept: frozenset[int]     # positions of the parts the code goes on to use


def random_split_of(facts: "ModuleFacts", name: str, binding: Stmt) -> Optional[RandomSplit]:
    """`a, b = random_split(name, lengths, generator=g)` cutting this binding, if any."""
    code = facts.module.code_for_node
    for u in binding_uses(facts, name, binding):
        node = u.stmt.node
        if u.kind != "narrowed" or not isinstance(node, cst.Assign) or not isinstance(node.value, cst.Call):
            continue
        call = node.value
        if last_part(facts.qualify(call.func) or dotted(call.func) or "") != "random_split" or len(call.args) < 2 \
                or dotted(call.args[0].value) != name or len(node.targets) != 1:
            continue
        target = node.targets[0].target
        if not isinstance(target, (cst.Tuple, cst.List)):
            return None
        kept = frozenset(i for i, el in enumerate(target.elements)
                         if isinstance(el.value, cst.Name) and el.value.value != "_"
                         and not el.value.value.startswith("_"))
        generator = keyword(call, "generator") or (call.args[2] if len(call.args) > 2 else None)
        seed = code(generator.value) if generator is not None else _manual_seed_before(facts, u.stmt)
        return RandomSplit(u.stmt, code(call.args[1].value), seed, kept)
    return None


def _manual_seed_before(facts: "ModuleFacts", stmt: Stmt) -> Optional[str]:
    """The last `torch.manual_seed(<literal>)` before `stmt` in its scope, as written;
    None when the seed is not set there (it may be set anywhere)."""
    found = None
    for s in facts.index.function_body(stmt.function):
        if s.order >= stmt.order:
            break
        for call in s.calls:
            if facts.qualify(call.func) in ("torch.manual_seed", "torch.random.manual_seed") and call.args:
                found = facts.module.code_for_node(call.args[0].value)
    return found


def held_out_overlaps_training(facts: "ModuleFacts", eval_copy, constructions) -> Optional[str]:
    """For an evaluation copy of the training set cut by `random_split`: does the
    part it keeps overlap what the training copy keeps? Only when both splits can be
    read (the same lengths, seeds written out): the same part kept by both, or two
    different fixed seeds (two independent permutations share samples)."""
    mine = random_split_of(facts, eval_copy.name, eval_copy.stmt)
    if mine is None or mine.seed is None:
        return None
    code = facts.module.code_for_node
    for other in constructions:
        if other is eval_copy or other.callee != eval_copy.callee or facts.patterns.is_eval_data(last_part(other.name)):
            continue
        if [code(a) for a in other.call.args if a.keyword is None][:1] != \
                [code(a) for a in eval_copy.call.args if a.keyword is None][:1]:
            continue  # another root folder: another data set
        theirs = random_split_of(facts, other.name, other.stmt)
        if theirs is None or theirs.seed is None or theirs.lengths != mine.lengths:
            continue
        if theirs.seed == mine.seed and mine.kept & theirs.kept:
            return (f"`{eval_copy.name}` keeps the same part of its `random_split` as the training copy "
                    f"`{other.name}` (same lengths, same seed)")
        if theirs.seed != mine.seed:
            return (f"`{eval_copy.name}` and the training copy `{other.name}` are split with different seeds "
                    f"({mine.seed} and {theirs.seed}), so their parts share samples")
    return None


def trained_and_evaluated(facts: "ModuleFacts") -> list[tuple[cst.Arg, str, str]]:
    """Data given both to an in-file function that trains and to one that evaluates:
    `train(model, test_data)` ... `evaluate(model, test_data)`. Returns (the argument
    of the training call, the data name, the training function's name)."""
    trained: dict[str, tuple[cst.Arg, str, Stmt]] = {}
    evaluated: list[tuple[str, Stmt]] = []
    for call, s in facts.index.calls:
        if not isinstance(call.func, cst.Name):
            continue
        candidates = [f for f in facts.functions.get(call.func.value, []) if not f.is_method]
        if len(candidates) != 1:
            continue
        fn = candidates[0]
        trains = facts.backprops_in(fn.stmt)
        evaluates = not trains and (facts.patterns.is_eval_function(fn.name) or facts.evaluation.is_eval_by_behaviour(fn)
                                    or any(facts.eval_context(l.stmt) for l in facts.batch_loops
                                           if fn.stmt.contains(l.stmt)))
        for arg in call.args:
            name = dotted(arg.value)
            if name is None or arg.keyword is not None:
                continue
            if trains and name not in trained:
                trained[name] = (arg, fn.name, s)
            elif evaluates:
                evaluated.append((name, s))
    from .flow import last_assignment_before
    out = []
    for name, (arg, fn_name, s) in trained.items():
        binding = last_assignment_before(facts.index, name, s)
        if any(e == name and last_assignment_before(facts.index, name, es) is binding for e, es in evaluated):
            out.append((arg, name, fn_name))
    return out
