"""Cut the evaluation region around a finding out of a module.

The region is: the statements before the anchor (the innermost `for` loop holding the
finding, or the flagged statement when there is no loop) that initialise what it
uses, the anchor itself inside the `with` blocks that enclose it (`torch.no_grad()`
matters), and the later statements that compute, print or return the metric from
what the anchor produced. Enclosing `if`/`try`/outer loops are flattened; the
function or module around it is never run. `return x` becomes an assignment.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Optional

import libcst as cst

from ..facts.exprs import target_names
from ..facts.flow import statements_in
from ..facts.index import Stmt
from .names import BUILTINS, NameUse, expr_reads, free_names
from .roles import FULL_BATCH_ROLES, STANDIN_ROLES, infer_roles
from .selfstub import self_roles
from .tree import RegionError, Tree, after, before, block_units, code_of, path, smalls, unit

__all__ = ["RETURN_NAME", "RegionError", "Region", "Sink", "cut_region", "anchor_start", "cut_at", "has_io"]

RETURN_NAME = "__evallint_return__"
_MAX_POST = 20


@dataclass(frozen=True)
class Sink:
    label: str                 # what the user wrote (an expression or a variable name)
    expr: str                  # evaluated in the region's namespace at its end
    deps: frozenset[str]       # names the value depends on
    text: str                  # its expression and the definitions it depends on
    scope: str = "all"         # "last batch": a per-batch value read after the loop


@dataclass(frozen=True)
class Region:
    code: str
    imports: tuple[str, ...]
    free: tuple[str, ...]
    roles: dict = field(hash=False)
    sinks: tuple[Sink, ...]
    metric: Optional[Sink]
    anchor_line: int           # in the text the region was cut from
    flagged: frozenset[str]
    self_attrs: Optional[dict] = field(default=None, hash=False)  # the stand-in `self`'s attributes
    literals: dict = field(default_factory=dict, hash=False)      # parameters bound to their defaults


def _anchor(tree: Tree, line: int, training: bool = False) -> Stmt:
    """The innermost `for` loop around the finding that does not train (an epoch loop
    that also backpropagates is never replayed: the finding is then a full-batch
    evaluation inside it; `training` lifts that, for findings about an evaluation loop
    that trains); else the flagged statement, or the first loop inside a flagged
    compound statement."""
    at = tree.at_line(line)
    if at is None:
        raise RegionError(f"no statement at line {line}")
    node = unit(at)
    trains = (lambda s: False) if training else tree.facts.backprops_in
    if isinstance(node, cst.For) and not trains(at):
        return at
    loops = [l for l in tree.facts.enclosing_loops(at) if not trains(l.stmt)]
    if loops:
        return loops[0].stmt
    if tree.facts.enclosing_loops(at) and not isinstance(node, cst.SimpleStatementLine):
        raise RegionError("the finding is inside a training loop, with no evaluation loop or metric statement")
    if isinstance(node, cst.SimpleStatementLine):
        return _feeding_loop(tree, at) or at
    first = next((s for s in statements_in(at, tree.index) if isinstance(s.node, cst.For)), None)
    if first is not None:
        return first
    if isinstance(node, (cst.With, cst.If, cst.Try, cst.While)):
        return at  # e.g. a `with` header flagged, with no loop inside
    raise RegionError("no evaluation loop or metric statement at the finding")


def _feeding_loop(tree: Tree, at: Stmt) -> Optional[Stmt]:
    """A metric line after an evaluation loop (`acc = correct / (total * 100)`) is replayed
    with the loop that accumulates what it reads: the nearest earlier evaluation loop in
    its block (or inside an earlier `with` block) that writes one of those names."""
    reads = tree.use(unit(at)).reads
    for sibling in reversed(at.block[: at.index]):
        candidates = [sibling] if isinstance(sibling.node, cst.For) else \
            [s for s in statements_in(sibling, tree.index) if isinstance(s.node, cst.For)] \
            if isinstance(sibling.node, cst.With) else []
        for loop in candidates:
            use = tree.use(unit(loop))
            if reads & (use.writes | use.aug):
                return None if tree.facts.backprops_in(loop) else loop
        if reads & tree.use(unit(sibling)).writes:
            return None  # defined by other code in between: replay the line alone
    return None


_SETUP_METHODS = frozenset({"eval", "train", "zero_grad", "requires_grad_", "to", "float", "double", "half"})
# Calls that touch files, the network or the process: never replayed.
_IO = re.compile(r"(^|_)(load|loads|save|open|read|write|fetch|download|urlopen|system|popen|remove|unlink|"
                 r"mkdir|makedirs|rmtree|loadtxt|genfromtxt|fromfile|from_file|read_csv|to_csv|hub|exit)($|_)")


def has_io(tree: Tree, stmt: cst.BaseStatement) -> bool:
    """Does the statement (anything nested in it included) call something like `_IO`?"""
    for call in tree.calls(stmt):
        f = call.func
        name = f.value if isinstance(f, cst.Name) else f.attr.value if isinstance(f, cst.Attribute) else ""
        if _IO.search(name):
            return True
    return False


def _is_setup_call(stmt: cst.BaseStatement, standins: set[str]) -> bool:
    """`model.eval()`, `model.train()`, `optimizer.zero_grad()`, `torch.set_grad_enabled(False)`."""
    for small in smalls(stmt):
        if not (isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)):
            return False
        func = small.value.func
        if isinstance(func, cst.Attribute):
            root = func.value
            if isinstance(root, cst.Name) and root.value in standins and func.attr.value in _SETUP_METHODS:
                continue
            if isinstance(root, cst.Attribute) and isinstance(root.value, cst.Name) and root.value.value == "self" \
                    and func.attr.value in _SETUP_METHODS:
                continue  # `self.model.eval()`: the stand-in `self`'s model
            if isinstance(root, cst.Name) and root.value == "torch" and func.attr.value == "set_grad_enabled":
                continue
        return False
    return bool(smalls(stmt))


def _rewrite_returns(stmt: cst.BaseStatement) -> cst.BaseStatement:
    if not isinstance(stmt, cst.SimpleStatementLine):
        return stmt
    body = []
    for small in stmt.body:
        if isinstance(small, cst.Return):
            value = small.value or cst.Name("None")
            body.append(cst.Assign(targets=[cst.AssignTarget(cst.Name(RETURN_NAME))], value=value))
        else:
            body.append(small)
    return stmt.with_changes(body=body)


class _Cutter:
    def __init__(self, tree: Tree, anchor: Stmt, flagged: frozenset[str],
                 position: Optional[tuple[int, int]] = None, given_roles: Optional[dict] = None) -> None:
        self.given_roles = dict(given_roles or {})  # roles a probe assigns (a stale name)
        self.tree = tree
        self.flagged = flagged
        self.position = position  # the finding's (line, column): which value is its own
        chain = path(anchor)
        scope = max((k for k, s in enumerate(chain[:-1]) if isinstance(s.node, (cst.FunctionDef, cst.ClassDef))),
                    default=-1)
        # Levels from the scope's body down to the anchor.
        self.levels = chain[scope + 1:]
        # The class of a method the region is cut from: its `__init__` may stand in for `self`.
        self.scope_class = chain[scope - 1].node if scope >= 1 and isinstance(chain[scope - 1].node, cst.ClassDef) \
            and isinstance(chain[scope].node, cst.FunctionDef) else None
        self.self_attrs: Optional[dict] = None
        self.self_why = ""
        self.param_defaults = _literal_defaults(chain[scope].node) if scope >= 0 else {}
        self.anchor_stmt = anchor
        self.anchor = unit(anchor)
        self.imports, self.modules = tree.imports()
        self.local_defs = tree.local_defs()

    def cut(self) -> Region:
        scope_roles = self._roles()
        # A full-batch evaluation (no loop of its own) runs the model on whole tensors:
        # those get stand-ins too, so that the planted accuracy holds.
        kept = STANDIN_ROLES if isinstance(self.anchor, cst.For) else STANDIN_ROLES | FULL_BATCH_ROLES
        standins = {n for n, r in scope_roles.items() if r in kept}
        available = BUILTINS | self.modules | set(scope_roles)
        anchor_use = self.tree.use(self.anchor)
        produced = set(anchor_use.writes | anchor_use.aug)
        if not produced:  # `model.eval` as a statement: what follows uses the same objects
            produced = set(anchor_use.reads - BUILTINS - self.modules)
        defs: dict[str, tuple[frozenset[str], str]] = {}
        own: list[Sink] = []
        if isinstance(self.anchor, cst.SimpleStatementLine):
            self._record_defs(self.anchor, defs)
            # The value the flagged statement computes is the finding's own metric.
            own = self._sinks_of(self.anchor, available | produced | set(anchor_use.reads), defs)
        post, sinks = self._post(available, produced, defs)
        sinks = own + sinks
        own_label, inner = self._own_value(available | produced | set(anchor_use.reads), defs)
        sinks = sinks + inner

        excluded: set[int] = set()
        first_missing: list[str] = []
        helpers: dict[str, cst.FunctionDef] = {}  # the file's functions the region calls
        for _ in range(12):  # drop statements whose inputs nothing can provide, to a fixed point
            post = {d: [st for st in stmts if id(st) not in excluded] for d, stmts in post.items()}
            prior, accumulators = self._prior(post, available, standins, produced, excluded)
            body = list(helpers.values()) + self._assemble(prior, post)
            region_module = cst.Module(body=body, default_indent=self.tree.module.default_indent,
                                       default_newline=self.tree.module.default_newline)
            region_tree = Tree(region_module)
            free = [n for n in free_names(_function_use(region_tree.use(u), u) if u in helpers.values()
                                          else region_tree.use(u) for u in body)
                    if n not in BUILTINS and n not in self.modules]
            called = {n: f for n, f in self._helper_functions().items() if n in free and n not in helpers}
            if called:  # `test(loader, model)` defined in this file: its definition runs too
                helpers.update(called)
                continue
            candidates = [n for n in free if n not in self.local_defs]
            roles = infer_roles(region_module, candidates)
            roles.update({n: r for n, r in self.given_roles.items() if n in candidates})
            for n in candidates:  # a name the scope shows to be a model/loader keeps that role
                if n not in roles and n in scope_roles:
                    roles[n] = scope_roles[n]
            missing = [n for n in free if n not in roles]
            for n in [n for n in missing if n in self._stale_names()]:
                roles[n] = "stale"  # only the training loop defines it: its last batch's value
                missing.remove(n)
            for n in [n for n in missing if n in self.param_defaults]:
                roles[n] = "literal"  # a parameter's default value: what a plain call passes
                missing.remove(n)
            if "self" in missing:
                self.self_attrs, self.self_why = self_roles(region_module.code, self.scope_class, self.tree.module)
                if self.self_attrs is not None:
                    roles["self"] = "self"
                    missing.remove("self")
            first_missing = first_missing or missing
            culprits = [st for stmts in list(prior.values()) + list(post.values()) for st in stmts
                        if id(st) not in excluded and set(missing) & self.tree.use(st).reads]
            if not missing or not culprits:
                break
            excluded |= {id(st) for st in culprits}
        if missing:  # name what the user can act on: a name the region's own code reads
            raise RegionError(self._explain_missing(first_missing[0]))

        acc_sinks = [Sink(n, n, frozenset({n}), n) for n in dict.fromkeys(accumulators)]
        all_sinks = _dedupe(acc_sinks + sinks)
        if not all_sinks and isinstance(self.anchor, cst.For):
            # Nothing reported after the loop: the last values its body computed.
            all_sinks = [Sink(n, n, frozenset({n}), n) for n in sorted(self._loop_assigned())]
        own_sink = next((s for s in reversed(all_sinks) if s.label == own_label), None)
        return Region(code=region_module.code, imports=tuple(self.imports), free=tuple(free), roles=roles,
                      sinks=tuple(all_sinks), metric=own_sink or _pick_metric(all_sinks, self.flagged),
                      anchor_line=self.tree.start(self.anchor_stmt)[0], flagged=self.flagged,
                      self_attrs=self.self_attrs if "self" in roles else None,
                      literals={n: v for n, v in self.param_defaults.items() if roles.get(n) == "literal"})

    def _post(self, available: set[str], produced: set[str], defs):
        """Later statements, per level: those that use what the region produced, and
        those that define something such a statement needs (`n = len(loader.dataset)`)."""
        cands: list[tuple[int, cst.BaseStatement, bool]] = []  # (depth, stmt, reads the region)
        known = set(available) | produced
        derived = set(produced)
        sinks: list[Sink] = []
        stop = False
        for depth in range(len(self.levels) - 1, -1, -1):
            for stmt in after(self.levels[depth])[:_MAX_POST]:
                if stop:
                    break
                use = self.tree.use(stmt)
                reads = (use.reads | use.aug) - use.writes
                compound = not isinstance(stmt, cst.SimpleStatementLine)
                if has_io(self.tree, stmt) or (compound and not (reads & derived and reads <= known)) \
                        or isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                    if reads & derived and not compound:
                        sinks.extend(self._sinks_of(stmt, known, defs))
                    if use.writes & derived:
                        stop = True  # the metric's names are redefined by code we do not run
                    continue
                if reads <= known:
                    uses_region = bool((use.reads | use.aug) & derived)
                    cands.append((depth, stmt, uses_region))
                    known |= use.writes | use.aug
                    if uses_region:
                        derived |= use.writes | use.aug
                elif reads & derived:
                    sinks.extend(self._sinks_of(stmt, known, defs))  # e.g. wandb.log({...})
                if any(isinstance(x, (cst.Return, cst.Raise)) for x in smalls(stmt)):
                    stop = True
        kept: list[tuple[int, cst.BaseStatement]] = []
        wanted: set[str] = set()
        for depth, stmt, uses_region in reversed(cands):
            use = self.tree.use(stmt)
            if uses_region or use.writes & wanted:
                kept.append((depth, stmt))
                wanted |= use.reads | use.aug
        post: dict[int, list[cst.BaseStatement]] = {}
        for depth, stmt in reversed(kept):
            sinks.extend(self._sinks_of(stmt, known, defs))
            self._record_defs(stmt, defs)
            post.setdefault(depth, []).append(stmt)
        return post, sinks

    def _prior(self, post, available, standins, produced, excluded):
        """Earlier statements that initialise what the anchor and the later statements
        read (nearest definition only), plus set-up calls like `model.eval()`."""
        needed: set[str] = set()
        for st in [self.anchor, *(st for stmts in post.values() for st in stmts)]:
            needed |= self.tree.use(st).reads | self.tree.use(st).aug
        for lv in self.levels[:-1]:  # kept `with` headers read names too
            if isinstance(lv.node, cst.With):
                needed |= lv.loads
        blocked: set[str] = set()
        prior: dict[int, list[cst.BaseStatement]] = {}
        accumulators: list[str] = []
        for depth in range(len(self.levels) - 1, -1, -1):
            chosen = []
            for stmt in reversed(self._unwrapped(before(self.levels[depth]), standins)):
                use = self.tree.use(stmt)
                simple = isinstance(stmt, cst.SimpleStatementLine)
                if simple and any(isinstance(x, (cst.Return, cst.Raise)) for x in smalls(stmt)):
                    break
                targets = use.writes & (needed - blocked - standins)
                # `with torch.no_grad(): per_class = torch.zeros(10)`: a block of plain lines
                plain_with = isinstance(stmt, cst.With) and isinstance(stmt.body, cst.IndentedBlock) and \
                    all(isinstance(b, cst.SimpleStatementLine) for b in stmt.body.body)
                if (simple or plain_with) and targets and id(stmt) not in excluded and not has_io(self.tree, stmt):
                    chosen.append(stmt)
                    needed = (needed - use.writes) | use.reads | use.aug
                    accumulators.extend(sorted(t for t in targets if t in produced))
                elif simple and _is_setup_call(stmt, standins) and \
                        use.reads <= available | ({"self"} if self.scope_class is not None else set()):
                    chosen.append(stmt)
                else:
                    blocked |= use.writes & needed  # defined by code we do not run: a stand-in
            prior[depth] = list(reversed(chosen))
        return prior, accumulators

    def _unwrapped(self, stmts: list[cst.BaseStatement], standins: set[str]) -> list[cst.BaseStatement]:
        """`with torch.no_grad(): per_class = torch.zeros(10)` before the loop initialises
        like a plain statement: such a block's simple statements stand in its place
        when none of them touches a stand-in (a model run there needs its context)."""
        out: list[cst.BaseStatement] = []
        for stmt in stmts:
            body = stmt.body.body if isinstance(stmt, cst.With) and isinstance(stmt.body, cst.IndentedBlock) else ()
            if body and all(isinstance(b, cst.SimpleStatementLine) for b in body) \
                    and not any(self.tree.use(b).reads & standins for b in body) \
                    and not any(has_io(self.tree, b) for b in body):
                out.extend(body)
            else:
                out.append(stmt)
        return out

    # -- helpers ------------------------------------------------------------------
    def _stale_names(self) -> set[str]:
        """Names evaluation loops of the file read while only training loops define them."""
        if not hasattr(self, "_stale"):
            self._stale = {r.name for r in self.tree.facts.stale_reads}
        return self._stale

    def _helper_functions(self) -> dict[str, cst.FunctionDef]:
        """Top-level functions of the file that touch no files or network, other than
        the one the region is cut from: defining them runs nothing."""
        own = {id(unit(s)) for s in self.levels}
        return {s.node.name.value: s.node for s in self.tree.index.top
                if isinstance(s.node, cst.FunctionDef) and id(s.node) not in own
                and not has_io(self.tree, s.node)}

    def _roles(self) -> dict[str, str]:
        """Roles of names from their use anywhere in the scope up to the region's end."""
        scope_block = block_units(self.levels[0])
        reads: set[str] = set()
        for stmt in scope_block:
            reads |= self.tree.use(stmt).reads | self.tree.use(stmt).aug
        return infer_roles(cst.Module(body=scope_block), sorted(reads - BUILTINS - self.modules - self.local_defs))

    def _assemble(self, prior, post) -> list[cst.BaseStatement]:
        inner: list[cst.BaseStatement] = [self.anchor]
        for depth in range(len(self.levels) - 1, -1, -1):
            node = unit(self.levels[depth])
            if depth != len(self.levels) - 1 and isinstance(node, cst.With):
                inner = [node.with_changes(body=cst.IndentedBlock(body=inner))]
            inner = prior.get(depth, []) + inner + [_rewrite_returns(s) for s in post.get(depth, [])]
        return inner

    def _record_defs(self, stmt: cst.BaseStatement, defs) -> None:
        for small in smalls(stmt):
            value = getattr(small, "value", None)
            targets: list[str] = []
            if isinstance(small, cst.Assign):
                for t in small.targets:
                    targets += sorted(set(target_names(t.target)))
            elif isinstance(small, (cst.AugAssign, cst.AnnAssign)) and isinstance(small.target, cst.Name):
                targets = [small.target.value]
            elif isinstance(small, cst.Return):
                targets = [RETURN_NAME]
            if value is None:
                continue
            reads = expr_reads(value)
            for t in targets:
                old_reads, old_text = defs.get(t, (frozenset(), ""))
                defs[t] = (old_reads | reads, f"{old_text} {code_of(value)}".strip())

    def _sinks_of(self, stmt: cst.BaseStatement, known: set[str], defs) -> list[Sink]:
        out: list[Sink] = []
        for small in smalls(stmt):
            exprs: list[tuple[str, str]] = []
            if isinstance(small, cst.Return) and small.value is not None:
                value = small.value
                if isinstance(value, cst.Tuple):
                    exprs += [(code_of(el.value), f"{RETURN_NAME}[{i}]") for i, el in enumerate(value.elements)]
                else:
                    exprs.append((code_of(value), RETURN_NAME))
            elif isinstance(small, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                targets = small.targets if isinstance(small, cst.Assign) else [small]
                for t in targets:
                    if isinstance(t.target, cst.Name):
                        exprs.append((t.target.value, t.target.value))
            elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                exprs += [(e, e) for e in _reported_exprs(small.value)]
            for label, expr in exprs:
                try:
                    reads = expr_reads(cst.parse_expression(expr)) if expr != RETURN_NAME and \
                        not expr.startswith(RETURN_NAME) else \
                        expr_reads(cst.parse_expression(label)) if expr.startswith(RETURN_NAME + "[") else \
                        expr_reads(small.value)  # one element of a returned tuple reads only its own names
                except cst.ParserSyntaxError:
                    continue
                if not reads <= known | set(defs):
                    continue
                deps, text = _closure(reads, defs, label)
                out.append(Sink(label, expr, deps, text))
        return out

    def _own_value(self, known: set[str], defs) -> tuple[Optional[str], list[Sink]]:
        """The label of the value the finding's column points at (see `arith.own_label`),
        and, for a flagged statement inside the loop (a per-batch print), its values
        read after the loop: the last batch's."""
        if self.position is None:
            return None, []
        at = self.tree.at_line(self.position[0])
        if at is None or not isinstance(unit(at), cst.SimpleStatementLine):
            return None, []
        from .arith import own_label

        stmt = unit(at)
        lines = self.tree.module.code.splitlines()
        text = lines[self.position[0] - 1] if self.position[0] <= len(lines) else ""
        label = own_label(stmt, text, self.position[1])
        inner: list[Sink] = []
        if label is not None and stmt is not self.anchor and isinstance(self.anchor, cst.For) \
                and any(s is self.anchor_stmt for s in at.ancestors()):
            inner = [replace(s, scope="last batch") for s in self._sinks_of(stmt, known | self.tree.use(stmt).reads, defs)
                     if s.label == label]
        return label, inner

    def _loop_assigned(self) -> set[str]:
        """Plain names the loop's body assigns directly."""
        body = self.tree.facts.loop(self.anchor_stmt).body
        return {t.target.value for s in body if isinstance(s.node, cst.Assign) and s.line_node is not None
                for t in s.node.targets if isinstance(t.target, cst.Name)}

    def _explain_missing(self, name: str) -> str:
        if name == "self" and self.self_why:
            return self.self_why
        origin = self.tree.origin(name)
        if origin is not None:
            return f"`{name}` comes from `{origin}`, which replay does not import"
        if name in self.local_defs:
            return f"`{name}` is defined in this file; replay does not run the module's code"
        return f"no stand-in for `{name}`"


def _literal_defaults(node) -> dict:
    """The enclosing function's parameters whose defaults are plain literals."""
    import ast

    out: dict = {}
    if not isinstance(node, cst.FunctionDef):
        return out
    for p in (*node.params.params, *node.params.kwonly_params):
        if p.default is None:
            continue
        try:
            out[p.name.value] = ast.literal_eval(code_of(p.default))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return out


def _function_use(use: NameUse, node: cst.FunctionDef) -> NameUse:
    """A helper's definition binds only its name; its parameters and locals stay inside."""
    return NameUse(reads=use.reads - use.writes, writes=frozenset({node.name.value}), aug=frozenset())


def _reported_exprs(call: cst.Call) -> list[str]:
    """The values a print/log call shows: f-string fields, %-format operands, .format
    arguments, dict values, plain arguments."""
    out: list[str] = []

    def take(expr: cst.BaseExpression) -> None:
        if isinstance(expr, cst.FormattedString):
            for part in expr.parts:
                if isinstance(part, cst.FormattedStringExpression):
                    take(part.expression)
        elif isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Modulo) \
                and isinstance(expr.left, (cst.SimpleString, cst.ConcatenatedString)):
            right = expr.right
            for el in (right.elements if isinstance(right, cst.Tuple) else [right]):
                take(el.value if isinstance(el, cst.Element) else el)
        elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) \
                and expr.func.attr.value == "format":
            for a in expr.args:
                take(a.value)
        elif isinstance(expr, cst.Dict):
            for el in expr.elements:
                if isinstance(el, cst.DictElement):
                    take(el.value)
        elif isinstance(expr, (cst.SimpleString, cst.ConcatenatedString, cst.Integer, cst.Float)):
            return
        else:
            out.append(code_of(expr))

    for arg in call.args:
        if arg.keyword is None or arg.keyword.value not in ("sep", "end", "file", "flush"):
            take(arg.value)
    return out


def _closure(reads: frozenset[str], defs, label: str) -> tuple[frozenset[str], str]:
    deps = set(reads)
    texts = [label]
    todo = sorted(reads, reverse=True)  # sorted: the text must not depend on the hash seed
    while todo:
        n = todo.pop()
        if n in defs:
            more, text = defs[n]
            texts.append(text)
            for m in sorted(more - deps):
                deps.add(m)
                todo.append(m)
    return frozenset(deps), " ".join(texts)


def _dedupe(sinks: list[Sink]) -> list[Sink]:
    seen: dict[str, Sink] = {}
    for s in sinks:
        seen.pop(s.label, None)
        seen[s.label] = s  # keep the latest position
    return list(seen.values())


def _pick_metric(sinks: list[Sink], flagged: frozenset[str]) -> Optional[Sink]:
    if not sinks:
        return None
    if flagged:
        related = [s for s in sinks if s.deps & flagged]
        if related:
            return related[-1]
    return sinks[-1]


def _flagged_names(tree: Tree, line: int) -> frozenset[str]:
    at = tree.at_line(line)
    if at is not None and isinstance(unit(at), cst.SimpleStatementLine):
        use = tree.use(unit(at))
        return frozenset(use.writes | use.aug)
    return frozenset()


def cut_region(text: str, line: int, training: bool = False, column: Optional[int] = None,
               roles: Optional[dict] = None) -> Region:
    """Cut the region around the finding at `line` of `text` (`column`: which value of
    the flagged statement is the finding's own; `roles`: names whose stand-in the probe
    chooses)."""
    tree = Tree.parse(text)
    return _Cutter(tree, _anchor(tree, line, training), _flagged_names(tree, line),
                   (line, column) if column is not None else None, roles).cut()


def anchor_start(text: str, line: int, training: bool = False) -> tuple[tuple[int, int], type]:
    """Where the anchor of the finding at `line` starts (line, 0-based column), and
    its statement type: used to find the same region in the fixed text."""
    tree = Tree.parse(text)
    anchor = _anchor(tree, line, training)
    return tree.start(anchor), type(unit(anchor))


def cut_at(text: str, start: tuple[int, int], kind: type, flagged: frozenset[str],
           position: Optional[tuple[int, int]] = None) -> Region:
    """Cut the region whose anchor is the first statement of type `kind` at or after `start`
    (`position`: the finding's (line, column) in `text`)."""
    tree = Tree.parse(text)
    anchor = tree.first_from(start, kind)
    if anchor is None:
        raise RegionError("the fixed code has no matching region")
    return _Cutter(tree, anchor, flagged, position).cut()
