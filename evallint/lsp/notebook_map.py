"""Where a cell's code sits inside a notebook's JSON text.

An editor that opens an .ipynb file as a plain document holds the JSON, while
evallint reports (cell, line, column) inside the cell's code. This map finds the JSON
string(s) of each cell's `source` and, for every character of the decoded code, its
offset in the raw JSON (escapes like \\n, \\" and \\uXXXX make them differ), so a
finding can be underlined on the very characters the user would see in the JSON.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..textpos import LineIndex

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', re.S)
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True)
class _Piece:
    text: str                # decoded string value
    offsets: tuple[int, ...]  # raw offset of each decoded character
    close: int               # raw offset of the closing quote


class NotebookMap:
    def __init__(self, text: str, cells: dict[int, list[_Piece]]) -> None:
        self._index = LineIndex(text)
        self._cells = cells

    @classmethod
    def build(cls, text: str) -> Optional["NotebookMap"]:
        try:
            return cls(text, _scan(text))
        except (ValueError, IndexError, KeyError):
            return None  # not the JSON we expected: callers fall back to the top of the file

    def locate(self, cell: int, line: int, col0: int) -> tuple[int, int]:
        """(cell 1-based, line 1-based, column 0-based) -> (0-based line, 0-based column) in the JSON."""
        pieces = self._cells.get(cell)
        if not pieces:
            return 0, 0
        code = "".join(p.text for p in pieces)
        offset = LineIndex(code).offset(line, col0)
        raw = pieces[-1].close
        for piece in pieces:
            if offset < len(piece.text):
                raw = piece.offsets[offset]
                break
            offset -= len(piece.text)
        doc_line, doc_col = self._index.position(raw)
        return doc_line - 1, doc_col


def _scan(text: str) -> dict[int, list[_Piece]]:
    """Collect the strings at cells[i].source (a string or a list of strings)."""
    cells: dict[int, list[_Piece]] = {}
    # Each frame: [kind, key_or_index, expecting_key]; the path of a value is the frame keys.
    stack: list[list] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "{[":
            stack.append(["{", None, True] if token == "{" else ["[", 0, False])
        elif token in "}]":
            stack.pop()
        elif token == ":":
            stack[-1][2] = False
        elif token == ",":
            if stack[-1][0] == "[":
                stack[-1][1] += 1
            else:
                stack[-1][2] = True
        elif token.startswith('"'):
            frame = stack[-1] if stack else None
            if frame is not None and frame[0] == "{" and frame[2]:
                frame[1] = _decode(token, match.start())[0]
                continue
            path = [f[1] for f in stack]
            if len(path) in (3, 4) and path[0] == "cells" and path[2] == "source" \
                    and isinstance(path[1], int):
                value, offsets = _decode(token, match.start())
                cells.setdefault(path[1] + 1, []).append(
                    _Piece(value, tuple(offsets), match.end() - 1))
    return cells


def _decode(token: str, start: int) -> tuple[str, list[int]]:
    chars: list[str] = []
    offsets: list[int] = []
    i, end = 1, len(token) - 1
    while i < end:
        offsets.append(start + i)
        if token[i] != "\\":
            chars.append(token[i])
            i += 1
        elif token[i + 1] == "u":
            unit = int(token[i + 2:i + 6], 16)
            i += 6
            low = int(token[i + 2:i + 6], 16) if token.startswith("\\u", i) else 0
            if 0xD800 <= unit < 0xDC00 and 0xDC00 <= low < 0xE000:
                unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                i += 6
            chars.append(chr(unit))
        else:
            chars.append(_ESCAPES[token[i + 1]])
            i += 2
    return "".join(chars), offsets
