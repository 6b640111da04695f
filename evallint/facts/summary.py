"""A module's summary for the project view: small, JSON, computed from the facts the
module's own check already built (no second traversal of the tree).

```
{"classes":   {"Net": {"module": true, "lightning": false, "sensitive": true}},
 "functions": {"evaluate": {"params": ["model", "loader"], "mode": {"model": false},
                            "no_grad": true, "runs": ["model"], "returns_model": null}},
 "exports":   {"Net": ["pkg/models.py", "Net"], "models": ["pkg/models.py", ""]},
 "stars":     ["pkg/layers.py"],
 "calls":     [{"to": ["utils.py", "evaluate"], "no_grad": true,
                "args": {"model": {"eval": true, "sensitive": false}}}]}
```
`mode`: the mode a function sets on a parameter (false: eval). `returns_model`
(present only for factories): the sensitivity of the module it returns. `calls`: this
module's calls of helpers in other modules of the tree, with what holds at each call
(for the assumptions those helpers' own checks made, see `project.overturned`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from . import loops, models, resolve
from .exprs import dotted, last_part

if TYPE_CHECKING:  # pragma: no cover
    from . import ModuleFacts


def summarize(facts: "ModuleFacts") -> dict:
    project = facts.project
    out: dict = {"classes": {}, "functions": {}, "exports": {}, "stars": [], "calls": []}
    for name, cls in facts.classes.items():
        if cls.stmt.parent is not None:
            continue
        out["classes"][name] = {
            "module": resolve.is_module_class(facts, cls),
            "lightning": models.is_lightning_class(cls, facts.classes),
            "sensitive": facts.class_sensitivity(name),
        }
    for name, infos in facts.functions.items():
        info = infos[-1]
        if resolve.is_exported_function(info):
            out["functions"][name] = _function(facts, info)
    if project is not None:
        _imports(facts, out)
        out["calls"] = _calls(facts)
    return out


def _function(facts: "ModuleFacts", info) -> dict:
    params = list(info.params)
    mode: dict[str, Optional[bool]] = {}
    for call, _ in facts.calls_within(info.stmt):
        mc = models.mode_call(call)
        if mc is not None and mc[0] in params:
            mode[mc[0]] = mc[1]
    runs = sorted({key for _, key, _ in facts.model_calls(info.stmt) if key in params})
    entry = {"params": params, "mode": mode, "no_grad": _body_without_grad(facts, info), "runs": runs}
    returned = _returned_model(facts, info)
    if returned is not False:
        entry["returns_model"] = returned[0]
    return entry


def _body_without_grad(facts: "ModuleFacts", info) -> bool:
    """Decorated with no_grad/inference_mode, or its body is one such `with` block
    (after a docstring)."""
    if facts.no_grad_decorated(info):
        return True
    body = [s for s in info.node.body.body]
    if body and isinstance(body[0], cst.SimpleStatementLine) and isinstance(body[0].body[0], cst.Expr) \
            and isinstance(body[0].body[0].value, (cst.SimpleString, cst.ConcatenatedString)):
        body = body[1:]
    return len(body) == 1 and isinstance(body[0], cst.With) and any(
        loops.is_no_grad_item(i.item, facts.qualify) for i in body[0].items)


def _returned_model(facts: "ModuleFacts", info):
    """(sensitivity,) of the torch module a factory returns; False when it returns none."""
    for stmt in facts.index.function_body(info.stmt):
        node = stmt.node
        if not isinstance(node, cst.Return) or node.value is None:
            continue
        value = node.value
        if isinstance(value, cst.Name) and facts.model_binding_call(value.value, stmt) is not None:
            return (facts.model_sensitivity(value.value, stmt),)
        if isinstance(value, cst.Call):
            built = _constructor(value)
            callee = facts.qualify(built.func) or "" if built is not None else ""
            cls = resolve.class_live_at(facts, last_part(callee), stmt) if callee else None
            if cls is not None and resolve.is_module_class(facts, cls):
                return (facts.class_sensitivity(cls.name),)
            if callee and resolve.builds_project_model(facts, callee):
                return (resolve.project_sensitivity(facts, callee),)
    return False


def _constructor(call: cst.Call) -> Optional[cst.Call]:
    while isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) \
            and call.func.attr.value in resolve.SAME_MODULE_METHODS and isinstance(call.func.value, cst.Call):
        call = call.func.value
    return call if isinstance(call, cst.Call) else None


def _imports(facts: "ModuleFacts", out: dict) -> None:
    """Names this module re-exports from other modules of the tree, and star imports."""
    project = facts.project
    for stmt in facts.statements:
        node = stmt.node
        if stmt.parent is not None or not isinstance(node, (cst.Import, cst.ImportFrom)):
            continue
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = dotted(alias.name)
                if full and alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    key = project.module_key(full)
                    if key is not None:
                        out["exports"][alias.asname.name.value] = [key, ""]
            continue
        level = len(node.relative)
        module = dotted(node.module) if node.module is not None else ""
        if module is None:
            continue
        if isinstance(node.names, cst.ImportStar):
            key = project.module_key(module, level)
            if key is not None:
                out["stars"].append(key)
            continue
        for alias in node.names:
            name = dotted(alias.name)
            if name is None:
                continue
            local = alias.asname.name.value if (alias.asname and isinstance(alias.asname.name, cst.Name)) else name
            sub = project.module_key(f"{module}.{name}" if module else name, level)
            if sub is not None:
                out["exports"][local] = [sub, ""]
                continue
            key = project.module_key(module, level)
            if key is not None:
                out["exports"][local] = [key, name]


def _calls(facts: "ModuleFacts") -> list[dict]:
    """Calls of helpers defined in other modules of the tree, with what holds there:
    gradients off, and per model argument: eval mode reached, layer sensitivity."""
    project = facts.project
    out = []
    kept, kept_spans = list(project.assumptions), list(project.spans)
    for call, stmt in facts.index.calls:
        found = project.imported_function(facts.qualify(call.func))
        if found is None:
            continue
        _, key, entry, name_there = found
        params = entry.get("params", [])
        args = {}
        for param in entry.get("runs", []):
            arg = resolve.argument(params, param, call)
            name = dotted(arg) if arg is not None else None
            if name is None:
                continue
            args[param] = {"eval": facts.eval_mode_reaches(name, stmt),
                           "sensitive": facts.model_sensitivity(name, stmt)}
        out.append({"to": [key, name_there], "no_grad": facts.grad_disabled(stmt), "args": args})
    # What holds at a call site is judged within this module only: the callers'
    # own callers are not followed (no assumption is recorded for them).
    project.assumptions[:], project.spans[:] = kept, kept_spans
    return out

