"""A part's new tree from its previous one: parse only the statements that changed.

libcst nodes are immutable, so the statements of the previous tree that kept their
text are reused as they are and the changed ones, parsed alone, are put in between.
That gives the tree a parse of the whole text gives only where the text around the
change cannot be owned differently, so anything else is refused (and the caller
parses the whole text):
- the first statement must be unchanged (the comments above it are the module's
  header, not its own);
- blocks are indented relative to the file's indentation, detected at its first
  indented block: every changed statement with a block must detect the file's
  indentation alone, and a change may not remove the blocks that set it; when the change reaches the file's last statement, the footer comes
  from that statement parsed alone (same lines after it);
- the lines above each changed statement, and above the statement after them, must
  be blank or comments at column 0: libcst gives an indented comment after a block to
  that block, and a statement parsed alone cannot know it;
- each changed text must parse as exactly one statement, with nothing after it.
"""
from __future__ import annotations

import ast
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
    if p == 0:
        return None  # the module's header (comments above the first statement) may move
    block_before = any(_has_block(stmt) for stmt in old_module.body[:p])
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
        if _has_block(stmt) and module.default_indent != old_module.default_indent:
            # Its blocks' indentation is written relative to another default than the
            # file's (and, when no block precedes it, it would set the file's default).
            return None
        fresh.append(stmt)
        if last:
            ending = {"footer": module.footer, "has_trailing_newline": module.has_trailing_newline}
    if not block_before and not any(_has_block(stmt) for stmt in fresh) and \
            any(_has_block(stmt) for stmt in old_module.body[p: len(old_texts) - s]):
        return None  # the block that set the file's indentation is gone
    body = list(old_module.body[:p]) + fresh + list(old_module.body[len(old_texts) - s:])
    return old_module.with_changes(body=body, **ending)


def _has_block(stmt: cst.CSTNode) -> bool:
    """Whether the statement holds an indented block in any clause (`if x: pass`
    followed by an indented `else:` holds one too)."""
    if not isinstance(stmt, cst.BaseCompoundStatement):
        return False
    clauses = [stmt, *getattr(stmt, "handlers", ()), *getattr(stmt, "cases", ())]
    for name in ("orelse", "finalbody"):
        clause = getattr(stmt, name, None)
        if isinstance(clause, cst.If):
            if _has_block(clause):
                return True
        elif clause is not None:
            clauses.append(clause)
    return any(isinstance(getattr(c, "body", None), cst.IndentedBlock) for c in clauses)


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


def statement_texts(text: str) -> Optional[list[str]]:
    """`text` cut as `splice` wants it: one piece per top-level statement line of the
    module (statements sharing a line stay together), each with the lines above it,
    the last one running to the end. Found with the fast `ast` parser; None when the
    text does not parse or numbers lines differently from evallint."""
    if "\r" in text or text.startswith("\ufeff") or "\x00" in text:
        return None
    try:
        body = ast.parse(text).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not body:
        return None
    ends: list[int] = []
    for stmt in body:
        start = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", ())])
        end = stmt.end_lineno or stmt.lineno
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)   # `a = 1; b = 2`: one line, one piece
        else:
            ends.append(end)
    offsets = line_offsets(text)
    ends[-1] = len(offsets) - 1
    pieces, previous = [], 0
    for end in ends:
        pieces.append(text[offsets[previous]: offsets[end]])
        previous = end
    return pieces


def line_offsets(text: str) -> list[int]:
    """Offset of the start of each line, and len(text) at the end."""
    offsets = [0]
    at = text.find("\n")
    while at != -1:
        offsets.append(at + 1)
        at = text.find("\n", at + 1)
    if offsets[-1] != len(text):
        offsets.append(len(text))
    return offsets


def reparse(old_module: cst.Module, old_text: str, new_text: str) -> Optional[cst.Module]:
    """The tree of `new_text`, an edit of `old_text` whose tree is `old_module`,
    parsing only the top-level statements the edit touched; None when `splice`
    refuses (the caller parses the whole text)."""
    old_texts, new_texts = statement_texts(old_text), statement_texts(new_text)
    if old_texts is None or new_texts is None:
        return None
    return splice(old_module, old_texts, new_texts)
