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
from dataclasses import dataclass, field
from typing import Optional, Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from .names import BUILTINS, free_names, name_use
from .roles import STANDIN_ROLES, infer_roles

RETURN_NAME = "__evallint_return__"
# Modules replay may import in the child: standard or numeric, no side effects.
IMPORTABLE = ("torch", "torchvision", "math", "statistics", "numpy", "tqdm", "sklearn", "time",
              "collections", "itertools", "functools", "operator", "random")
_MAX_POST = 20


class RegionError(Exception):
    """The finding's region cannot be cut; the message is the reason shown to users."""


@dataclass(frozen=True)
class Sink:
    label: str                 # what the user wrote (an expression or a variable name)
    expr: str                  # evaluated in the region's namespace at its end
    deps: frozenset[str]       # names the value depends on
    text: str                  # its expression and the definitions it depends on


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


# ---------------------------------------------------------------------------------
# Tree navigation


def _blocks(stmt: cst.CSTNode) -> list[Sequence[cst.BaseStatement]]:
    """The statement lists directly inside a compound statement."""
    out: list[Sequence[cst.BaseStatement]] = []

    def body(b) -> None:
        if isinstance(b, cst.IndentedBlock):
            out.append(b.body)

    if isinstance(stmt, (cst.For, cst.While)):
        body(stmt.body)
        if stmt.orelse is not None:
            body(stmt.orelse.body)
    elif isinstance(stmt, cst.If):
        body(stmt.body)
        orelse = stmt.orelse
        if isinstance(orelse, cst.If):
            out.append([orelse])
        elif orelse is not None:
            body(orelse.body)
    elif isinstance(stmt, (cst.With, cst.FunctionDef, cst.ClassDef)):
        body(stmt.body)
    elif isinstance(stmt, (cst.Try, cst.TryStar)):
        body(stmt.body)
        for h in stmt.handlers:
            body(h.body)
        if stmt.orelse is not None:
            body(stmt.orelse.body)
        if stmt.finalbody is not None:
            body(stmt.finalbody.body)
    return out


@dataclass
class _Level:
    block: Sequence[cst.BaseStatement]
    index: int

    @property
    def node(self) -> cst.BaseStatement:
        return self.block[self.index]


class _Tree:
    def __init__(self, text: str) -> None:
        try:
            self.module = cst.parse_module(text)
        except cst.ParserSyntaxError as exc:
            raise RegionError(f"the file does not parse ({exc.message})") from None
        wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
        self.pos = wrapper.resolve(PositionProvider)

    def lines(self, node: cst.CSTNode) -> tuple[int, int]:
        r = self.pos[node]
        return r.start.line, r.end.line

    def start(self, node: cst.CSTNode) -> tuple[int, int]:
        r = self.pos[node]
        return r.start.line, r.start.column

    def path_to(self, line: int) -> list[_Level]:
        """Statements containing `line`, outermost first."""
        path: list[_Level] = []
        block: Sequence[cst.BaseStatement] = self.module.body
        while True:
            for i, stmt in enumerate(block):
                a, b = self.lines(stmt)
                if a <= line <= b:
                    path.append(_Level(block, i))
                    inner = [blk for blk in _blocks(stmt)
                             if any(self.lines(s)[0] <= line <= self.lines(s)[1] for s in blk)]
                    if not inner:
                        return path
                    block = inner[0]
                    break
            else:
                return path

    def path_from(self, start: tuple[int, int], kind: type) -> list[_Level]:
        """The path to the first statement of type `kind` starting at or after `start`."""
        found: list[list[_Level]] = []

        def walk(block, prefix) -> bool:
            for i, stmt in enumerate(block):
                lv = prefix + [_Level(block, i)]
                if isinstance(stmt, kind) and self.start(stmt) >= start:
                    found.append(lv)
                    return True
                if any(walk(blk, lv) for blk in _blocks(stmt)):
                    return True
            return False

        walk(self.module.body, [])
        return found[0] if found else []


def _first_loop(levels: list[_Level]) -> list[_Level]:
    """Extend a path ending at a compound statement down to its first `for` loop."""
    def walk(block, prefix):
        for i, stmt in enumerate(block):
            lv = prefix + [_Level(block, i)]
            if isinstance(stmt, cst.For):
                return lv
            for blk in _blocks(stmt):
                got = walk(blk, lv)
                if got:
                    return got
        return None

    for blk in _blocks(levels[-1].node):
        got = walk(blk, list(levels))
        if got:
            return got
    return []


def anchor_path(tree: _Tree, line: int) -> list[_Level]:
    path = tree.path_to(line)
    if not path:
        raise RegionError(f"no statement at line {line}")
    loops = [k for k, lv in enumerate(path) if isinstance(lv.node, cst.For)]
    if loops:
        return path[: loops[-1] + 1]
    last = path[-1].node
    if isinstance(last, cst.SimpleStatementLine):
        return path
    extended = _first_loop(path)
    if extended:
        return extended
    if isinstance(last, (cst.With, cst.If, cst.Try, cst.While)):
        return path  # e.g. a `with` header flagged, with no loop inside
    raise RegionError("no evaluation loop or metric statement at the finding")


# ---------------------------------------------------------------------------------
# Cutting


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _small(stmt: cst.BaseStatement) -> list[cst.BaseSmallStatement]:
    return list(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else []


_SETUP_METHODS = frozenset({"eval", "train", "zero_grad", "requires_grad_", "to", "float", "double", "half"})
# Calls that touch files, the network or the process: never replayed.
_IO = re.compile(r"(^|_)(load|loads|save|open|read|write|fetch|download|urlopen|system|popen|remove|unlink|"
                 r"mkdir|makedirs|rmtree|loadtxt|genfromtxt|fromfile|from_file|read_csv|to_csv|hub|exit)($|_)")


def _has_io(stmt: cst.CSTNode) -> bool:
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            f = node.func
            name = f.value if isinstance(f, cst.Name) else f.attr.value if isinstance(f, cst.Attribute) else ""
            if _IO.search(name):
                found.append(name)

    stmt.visit(V())
    return bool(found)


def _is_setup_call(stmt: cst.BaseStatement, standins: set[str]) -> bool:
    """`model.eval()`, `model.train()`, `optimizer.zero_grad()`, `torch.set_grad_enabled(False)`."""
    for small in _small(stmt):
        if not (isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)):
            return False
        func = small.value.func
        if isinstance(func, cst.Attribute):
            root = func.value
            if isinstance(root, cst.Name) and root.value in standins and func.attr.value in _SETUP_METHODS:
                continue
            if isinstance(root, cst.Name) and root.value == "torch" and func.attr.value == "set_grad_enabled":
                continue
        return False
    return bool(_small(stmt))


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


def _module_imports(module: cst.Module) -> tuple[list[str], dict[str, str]]:
    """Import statements of allow-listed modules (kept), and every imported name with
    the module it comes from (to explain names replay will not import)."""
    keep: list[str] = []
    origin: dict[str, str] = {}

    class V(cst.CSTVisitor):
        def visit_Import(self, node: cst.Import) -> None:
            for alias in node.names:
                full = _code(alias.name)
                local = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) \
                    else full.split(".")[0]
                origin[local] = full
                if full.split(".")[0] in IMPORTABLE:
                    keep.append(f"import {full}" + (f" as {local}" if alias.asname else ""))

        def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
            if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
                return
            base = _code(node.module)
            for alias in node.names:
                name = _code(alias.name)
                local = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) \
                    else name
                origin[local] = f"{base}.{name}"
                if base.split(".")[0] in IMPORTABLE:
                    keep.append(f"from {base} import {name}" + (f" as {local}" if local != name else ""))

    module.visit(V())
    return list(dict.fromkeys(keep)), origin


class _Cutter:
    def __init__(self, tree: _Tree, path: list[_Level], flagged: frozenset[str]) -> None:
        self.tree = tree
        self.path = path
        self.flagged = flagged
        scope = max((k for k, lv in enumerate(path[:-1]) if isinstance(lv.node, (cst.FunctionDef, cst.ClassDef))),
                    default=-1)
        # Levels from the scope's body down to the anchor.
        self.levels = path[scope + 1:]
        self.anchor = path[-1].node
        self.imports, self.origin = _module_imports(tree.module)
        self.modules = {_local_of(line) for line in self.imports}
        # Functions and classes of the file itself: replay never runs the module's code.
        self.local_defs = {s.name.value for s in tree.module.body if isinstance(s, (cst.FunctionDef, cst.ClassDef))}

    def cut(self) -> Region:
        scope_roles = self._roles()
        standins = {n for n, r in scope_roles.items() if r in STANDIN_ROLES}
        available = BUILTINS | self.modules | set(scope_roles)
        anchor_use = name_use(self.anchor)
        produced = set(anchor_use.writes | anchor_use.aug)
        if not produced:  # `model.eval` as a statement: what follows uses the same objects
            produced = set(anchor_use.reads - BUILTINS - self.modules)
        defs: dict[str, tuple[frozenset[str], str]] = {}
        if isinstance(self.anchor, cst.SimpleStatementLine):
            self._record_defs(self.anchor, defs)
        post, sinks = self._post(available, produced, defs)

        excluded: set[int] = set()
        for _ in range(8):  # drop statements whose inputs nothing can provide, to a fixed point
            post = {d: [st for st in stmts if id(st) not in excluded] for d, stmts in post.items()}
            prior, accumulators = self._prior(post, available, standins, produced, excluded)
            body = self._assemble(prior, post)
            region_module = cst.Module(body=body, default_indent=self.tree.module.default_indent,
                                       default_newline=self.tree.module.default_newline)
            free = [n for n in free_names(list(body)) if n not in BUILTINS and n not in self.modules]
            candidates = [n for n in free if n not in self.local_defs]
            roles = infer_roles(region_module, candidates)
            for n in candidates:  # a name the scope shows to be a model/loader keeps that role
                if n not in roles and n in scope_roles:
                    roles[n] = scope_roles[n]
            missing = [n for n in free if n not in roles]
            culprits = [st for stmts in list(prior.values()) + list(post.values()) for st in stmts
                        if id(st) not in excluded and set(missing) & name_use(st).reads]
            if not missing or not culprits:
                break
            excluded |= {id(st) for st in culprits}
        if missing:
            raise RegionError(self._explain_missing(missing[0]))

        acc_sinks = [Sink(n, n, frozenset({n}), n) for n in dict.fromkeys(accumulators)]
        all_sinks = _dedupe(acc_sinks + sinks)
        if not all_sinks and isinstance(self.anchor, cst.For):
            # Nothing reported after the loop: the last values its body computed.
            all_sinks = [Sink(n, n, frozenset({n}), n) for n in sorted(_loop_assigned(self.anchor))]
        return Region(code=region_module.code, imports=tuple(self.imports), free=tuple(free), roles=roles,
                      sinks=tuple(all_sinks), metric=_pick_metric(all_sinks, self.flagged),
                      anchor_line=self.tree.lines(self.anchor)[0], flagged=self.flagged)

    def _post(self, available: set[str], produced: set[str], defs):
        """Later statements, per level: those that use what the region produced, and
        those that define something such a statement needs (`n = len(loader.dataset)`)."""
        cands: list[tuple[int, cst.BaseStatement, bool]] = []  # (depth, stmt, reads the region)
        known = set(available) | produced
        derived = set(produced)
        sinks: list[Sink] = []
        stop = False
        for depth in range(len(self.levels) - 1, -1, -1):
            lv = self.levels[depth]
            for stmt in list(lv.block[lv.index + 1:])[:_MAX_POST]:
                if stop:
                    break
                use = name_use(stmt)
                reads = (use.reads | use.aug) - use.writes
                compound = not isinstance(stmt, cst.SimpleStatementLine)
                if _has_io(stmt) or (compound and not (reads & derived and reads <= known)) \
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
                if any(isinstance(x, (cst.Return, cst.Raise)) for x in _small(stmt)):
                    stop = True
        kept: list[tuple[int, cst.BaseStatement]] = []
        wanted: set[str] = set()
        for depth, stmt, uses_region in reversed(cands):
            use = name_use(stmt)
            if uses_region or use.writes & wanted:
                kept.append((depth, stmt))
                wanted |= use.reads | use.aug
        post: dict[int, list[cst.BaseStatement]] = {}
        for depth, stmt in reversed(kept):
            sinks.extend(self._sinks_of(stmt, known, defs))
            self._record_defs(stmt, defs)
            post.setdefault(depth, []).append(_rewrite_returns(stmt))
        return post, sinks

    def _prior(self, post, available, standins, produced, excluded):
        """Earlier statements that initialise what the anchor and the later statements
        read (nearest definition only), plus set-up calls like `model.eval()`."""
        needed = set(name_use(self.anchor).reads | name_use(self.anchor).aug)
        for stmts in post.values():
            for st in stmts:
                needed |= name_use(st).reads | name_use(st).aug
        for lv in self.levels[:-1]:  # kept `with` headers read names too
            if isinstance(lv.node, cst.With):
                needed |= {n for item in lv.node.items for n in name_use(item.item).reads}
        blocked: set[str] = set()
        prior: dict[int, list[cst.BaseStatement]] = {}
        accumulators: list[str] = []
        for depth in range(len(self.levels) - 1, -1, -1):
            lv = self.levels[depth]
            chosen = []
            for stmt in reversed(list(lv.block[: lv.index])):
                use = name_use(stmt)
                simple = isinstance(stmt, cst.SimpleStatementLine)
                if simple and any(isinstance(x, (cst.Return, cst.Raise)) for x in _small(stmt)):
                    break
                targets = use.writes & (needed - blocked - standins)
                if simple and targets and id(stmt) not in excluded and not _has_io(stmt):
                    chosen.append(stmt)
                    needed = (needed - use.writes) | use.reads | use.aug
                    accumulators.extend(sorted(t for t in targets if t in produced))
                elif simple and _is_setup_call(stmt, standins) and use.reads <= available:
                    chosen.append(stmt)
                else:
                    blocked |= use.writes & needed  # defined by code we do not run: a stand-in
            prior[depth] = list(reversed(chosen))
        return prior, accumulators

    # -- helpers ------------------------------------------------------------------
    def _roles(self) -> dict[str, str]:
        """Roles of names from their use anywhere in the scope up to the region's end."""
        scope_block = self.levels[0].block
        module = cst.Module(body=list(scope_block))
        use = name_use(module)
        return infer_roles(module, sorted((use.reads | use.aug) - BUILTINS - self.modules - self.local_defs))

    def _assemble(self, prior, post) -> list[cst.BaseStatement]:
        inner: list[cst.BaseStatement] = [self.anchor]
        for depth in range(len(self.levels) - 1, -1, -1):
            lv = self.levels[depth]
            if depth != len(self.levels) - 1 and isinstance(lv.node, cst.With):
                inner = [lv.node.with_changes(body=cst.IndentedBlock(body=inner))]
            inner = prior.get(depth, []) + inner + post.get(depth, [])
        return inner

    def _record_defs(self, stmt: cst.BaseStatement, defs) -> None:
        for small in _small(stmt):
            value = getattr(small, "value", None)
            targets: list[str] = []
            if isinstance(small, cst.Assign):
                for t in small.targets:
                    targets += sorted(name_use(t.target).writes | _target_names(t.target))
            elif isinstance(small, (cst.AugAssign, cst.AnnAssign)) and isinstance(small.target, cst.Name):
                targets = [small.target.value]
            elif isinstance(small, cst.Return):
                targets = [RETURN_NAME]
            if value is None:
                continue
            reads = name_use(value).reads
            for t in targets:
                old_reads, old_text = defs.get(t, (frozenset(), ""))
                defs[t] = (old_reads | reads, f"{old_text} {_code(value)}".strip())

    def _sinks_of(self, stmt: cst.BaseStatement, known: set[str], defs) -> list[Sink]:
        out: list[Sink] = []
        for small in _small(stmt):
            exprs: list[tuple[str, str]] = []
            if isinstance(small, cst.Return) and small.value is not None:
                value = small.value
                if isinstance(value, cst.Tuple):
                    exprs += [(_code(el.value), f"{RETURN_NAME}[{i}]") for i, el in enumerate(value.elements)]
                else:
                    exprs.append((_code(value), RETURN_NAME))
            elif isinstance(small, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                targets = small.targets if isinstance(small, cst.Assign) else [small]
                for t in targets:
                    if isinstance(t.target, cst.Name):
                        exprs.append((t.target.value, t.target.value))
            elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                exprs += [(e, e) for e in _reported_exprs(small.value)]
            for label, expr in exprs:
                try:
                    reads = name_use(cst.parse_expression(expr)).reads if expr != RETURN_NAME and \
                        not expr.startswith(RETURN_NAME) else name_use(small).reads
                except cst.ParserSyntaxError:
                    continue
                if not reads <= known | set(defs):
                    continue
                deps, text = _closure(reads, defs, label)
                out.append(Sink(label, expr, deps, text))
        return out

    def _explain_missing(self, name: str) -> str:
        if name in self.origin:
            return f"`{name}` comes from `{self.origin[name]}`, which replay does not import"
        if name in self.local_defs:
            return f"`{name}` is defined in this file; replay does not run the module's code"
        return f"no stand-in for `{name}`"


def _loop_assigned(loop: cst.For) -> set[str]:
    out: set[str] = set()
    if isinstance(loop.body, cst.IndentedBlock):
        for stmt in loop.body.body:
            for small in _small(stmt):
                if isinstance(small, cst.Assign):
                    for t in small.targets:
                        if isinstance(t.target, cst.Name):
                            out.add(t.target.value)
    return out


def _local_of(import_line: str) -> str:
    if " as " in import_line:
        return import_line.rsplit(" as ", 1)[1].strip()
    if import_line.startswith("from "):
        return import_line.rsplit(" import ", 1)[1].strip()
    return import_line[len("import "):].split(".")[0].strip()


def _target_names(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        out: set[str] = set()
        for el in target.elements:
            out |= _target_names(el.value)
        return out
    return set()


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
            out.append(_code(expr))

    for arg in call.args:
        if arg.keyword is None or arg.keyword.value not in ("sep", "end", "file", "flush"):
            take(arg.value)
    return out


def _closure(reads: frozenset[str], defs, label: str) -> tuple[frozenset[str], str]:
    deps = set(reads)
    texts = [label]
    todo = list(reads)
    while todo:
        n = todo.pop()
        if n in defs:
            more, text = defs[n]
            texts.append(text)
            for m in more - deps:
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


def flagged_names(tree: _Tree, line: int) -> frozenset[str]:
    path = tree.path_to(line)
    if path and isinstance(path[-1].node, cst.SimpleStatementLine):
        use = name_use(path[-1].node)
        return frozenset(use.writes | use.aug)
    return frozenset()


def cut_region(text: str, line: int) -> Region:
    """Cut the region around the finding at `line` of `text`."""
    tree = _Tree(text)
    return _Cutter(tree, anchor_path(tree, line), flagged_names(tree, line)).cut()


def anchor_start(text: str, line: int) -> tuple[tuple[int, int], type]:
    """Where the anchor of the finding at `line` starts (line, 0-based column), and
    its statement type: used to find the same region in the fixed text."""
    tree = _Tree(text)
    path = anchor_path(tree, line)
    return tree.start(path[-1].node), type(path[-1].node)


def cut_at(text: str, start: tuple[int, int], kind: type, flagged: frozenset[str]) -> Region:
    """Cut the region whose anchor is the first statement of type `kind` at or after `start`."""
    tree = _Tree(text)
    path = tree.path_from(start, kind)
    if not path:
        raise RegionError("the fixed code has no matching region")
    return _Cutter(tree, path, flagged).cut()
