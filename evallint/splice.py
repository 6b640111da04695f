"""A part's new tree from its previous one: parse only the statements that changed.

libcst nodes are immutable, so the statements of the previous tree that kept their
text are reused as they are and the changed ones, parsed alone, are put in between.
That gives the tree a parse of the whole text gives only where the text around the
change cannot be owned differently, so anything else is refused (and the caller
parses the whole text):
- the change must be preceded by an unchanged statement with an indented block
  (the file's indentation is detected there); when it reaches the file's last
  statement, the footer comes from that statement parsed alone (same lines after it);
- the lines above each changed statement, and above the statement after them, must
  be blank or comments at column 0: libcst gives an indented comment after a block to
  that block, and a statement parsed alone cannot know it;
- each changed text must parse as exactly one statement, with nothing after it.
"""
from __future__ import annotations

from typing import Optional, Sequence

import libcst as cst

from .fastparse import parse_module


def splice(old_module: cst.Module, old_texts: Sequence[str], new_texts: Sequence[str]) -> Optional[cst.Module]:
    """The tree of "".join(new_texts), given the tree of "".join(old_texts), where
    each text is one top-level statement with the lines above it; None if refused."""
    if len(old_module.body) != len(old_texts):
        return None
    p = 0
    while p < min(len(old_texts), len(new_texts)) and old_texts[p] == new_texts[p]:
        p += 1
    s = 0
    while s < min(len(old_texts), len(new_texts)) - p and old_texts[-1 - s] == new_texts[-1 - s]:
        s += 1
    if p == len(old_texts) == len(new_texts):
        return old_module
    if not any(_has_block(stmt) for stmt in old_module.body[:p]):
        return None
    changed_old, changed_new = old_texts[p: len(old_texts) - s], new_texts[p: len(new_texts) - s]
    if not changed_new:
        return None  # statements removed only: what owns the lines around them is unclear
    after = (new_texts[len(new_texts) - s],) if s else ()
    if not all(_plain_lead(t) for t in (*changed_old, *changed_new, *after)):
        return None
    fresh = []
    ending = {}
    for i, text in enumerate(changed_new):
        # The file's last statement, parsed alone, ends as in the file (same lines after
        # it): it brings the module's footer.
        last = s == 0 and i == len(changed_new) - 1
        alone = _parse_alone(text, last)
        if alone is None:
            return None
        stmt, module = alone
        fresh.append(stmt)
        if last:
            ending = {"footer": module.footer, "has_trailing_newline": module.has_trailing_newline}
    body = list(old_module.body[:p]) + fresh + list(old_module.body[len(old_texts) - s:])
    return old_module.with_changes(body=body, **ending)


def _has_block(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.BaseCompoundStatement) and isinstance(stmt.body, cst.IndentedBlock)


def _plain_lead(text: str) -> bool:
    """The lines before the statement's first line are empty or column-0 comments."""
    for line in text.split("\n"):
        if line == "" or line.startswith("#"):
            continue
        return not line[:1].isspace()
    return True


def _parse_alone(text: str, last: bool) -> Optional[tuple[cst.BaseStatement, cst.Module]]:
    try:
        module = parse_module(text)
    except (cst.ParserSyntaxError, RecursionError):
        return None
    if len(module.body) != 1 or module.default_newline != "\n" or \
            (not last and (module.footer or not module.has_trailing_newline)):
        return None
    stmt = module.body[0]
    if module.header:
        # Alone, the lines above the statement are the module's header; in the file
        # they are the statement's own leading lines.
        stmt = stmt.with_changes(leading_lines=[*module.header, *stmt.leading_lines])
    return stmt, module
