"""Finding calls without scanning every call of the module.

`ModuleFacts.calls_within(stmt)` and `ModuleFacts.call_sites(function)` are asked
hundreds of times per file; each used to walk the whole call list (quadratic in the
file's length, which an editor pays on every change). The index lists calls in the
source order of their statements, so a statement's calls are one slice of it, found
by bisection; call sites are looked up by the callee's name. Same lists, same order.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right

import libcst as cst

from .index import Stmt
from .scopes import CallSite, FunctionInfo, call_sites_of


class CallLookup:
    def __init__(self, calls: list[tuple[cst.Call, Stmt]]) -> None:
        self.calls = calls
        orders = [s.order for _, s in calls]
        # Guard the invariant rather than trust it: out of order, scan as before.
        self.orders = orders if all(a <= b for a, b in zip(orders, orders[1:])) else None
        self.by_name: dict[str, list[tuple[cst.Call, Stmt]]] = {}       # f(...)
        self.by_attribute: dict[str, list[tuple[cst.Call, Stmt]]] = {}  # x.f(...)
        for call, stmt in calls:
            func = call.func
            if isinstance(func, cst.Name):
                self.by_name.setdefault(func.value, []).append((call, stmt))
            elif isinstance(func, cst.Attribute):
                self.by_attribute.setdefault(func.attr.value, []).append((call, stmt))

    def within(self, stmt: Stmt) -> list[tuple[cst.Call, Stmt]]:
        """All calls inside a statement, its nested blocks included."""
        if self.orders is None:
            return [(c, s) for c, s in self.calls if stmt.order <= s.order <= stmt.end_order]
        return self.calls[bisect_left(self.orders, stmt.order): bisect_right(self.orders, stmt.end_order)]

    def sites(self, function: FunctionInfo) -> list[CallSite]:
        """In-file calls of a function (see scopes.call_sites_of)."""
        bucket = self.by_attribute if function.is_method else self.by_name
        return call_sites_of(function, bucket.get(function.name, []))
