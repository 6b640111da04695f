"""Turn fixes expressed on the tree into minimal text edits.

The changed tree is printed by libcst (which keeps indentation, newline style and
everything it does not touch) and compared with the original text; the edit is the
differing middle part. One fix, one contiguous edit.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from .rule import NodeFix
from .textpos import LineIndex


class _Replacer(cst.CSTTransformer):
    def __init__(self, changes) -> None:
        super().__init__()
        self.changes = {id(c.old): c.new for c in changes}

    def on_leave(self, original_node, updated_node):
        new = self.changes.get(id(original_node))
        return updated_node if new is None else new


def fix_span(module: cst.Module, fix: NodeFix, original: str, index: LineIndex) -> Optional[tuple[tuple[int, int], tuple[int, int], str]]:
    """((line, col0), (end_line, end_col0), content) in the original text, or None if
    the fix changes nothing or does not print back."""
    try:
        new_code = module.visit(_Replacer(fix.changes)).code
    except Exception:
        return None
    if new_code == original:
        return None
    start = 0
    limit = min(len(original), len(new_code))
    while start < limit and original[start] == new_code[start]:
        start += 1
    end_old, end_new = len(original), len(new_code)
    while end_old > start and end_new > start and original[end_old - 1] == new_code[end_new - 1]:
        end_old -= 1
        end_new -= 1
    return index.position(start), index.position(end_old), new_code[start:end_new]
