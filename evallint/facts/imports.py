"""What the module's imported names stand for: `nn` -> `torch.nn`, `F` ->
`torch.nn.functional`, `DataLoader` -> `torch.utils.data.DataLoader`."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from .exprs import dotted


def import_aliases(statements) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for stmt in statements:
        node = stmt.node
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = dotted(alias.name)
                if full is None:
                    continue
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    aliases[alias.asname.name.value] = full
                else:
                    head = full.split(".")[0]
                    aliases[head] = head
        elif isinstance(node, cst.ImportFrom) and not node.relative and node.module is not None:
            base = dotted(node.module)
            if base is None or isinstance(node.names, cst.ImportStar):
                continue
            for alias in node.names:
                name = dotted(alias.name)
                if name is None:
                    continue
                local = alias.asname.name.value if (alias.asname and isinstance(alias.asname.name, cst.Name)) else name
                aliases[local] = f"{base}.{name}"
    return aliases


def qualify(expr: cst.BaseExpression, aliases: dict[str, str]) -> Optional[str]:
    """The dotted name an expression stands for, through imports; None if not a name."""
    text = dotted(expr)
    if text is None:
        return None
    head, _, rest = text.partition(".")
    base = aliases.get(head, head)
    return f"{base}.{rest}" if rest else base


class Qualifier:
    """`qualify` for one module, remembered per expression node: the facts ask about
    the same few hundred names thousands of times. An entry holds its node, so that
    an id is never another node's."""

    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases
        self._seen: dict[int, tuple[cst.CSTNode, Optional[str]]] = {}

    def __call__(self, expr: cst.BaseExpression) -> Optional[str]:
        found = self._seen.get(id(expr))
        if found is not None and found[0] is expr:
            return found[1]
        out = qualify(expr, self.aliases)
        self._seen[id(expr)] = (expr, out)
        return out
