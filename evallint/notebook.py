"""Jupyter notebooks as one virtual Python module.

All code cells, in order, form one module (later cells see earlier names). IPython
magics and shell lines that start a statement (see `magics`) are masked by turning
their first character into '#', so they keep their length and every position inside
a cell stays where it was. The notebook's JSON layout is kept on write: an untouched notebook round-trips byte for byte.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Optional

from .magics import magic_lines

# Cell magics whose body is Python; any other cell magic (%%bash, %%html, ...) masks the cell.
PYTHON_BODY_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "memit", "skip"}
_ASSIGNED_MAGIC = re.compile(r"^\s*[\w.,\s\[\]()*]+=\s*[!%]")


class NotebookError(ValueError):
    pass


@dataclass(frozen=True)
class CellSpan:
    cell: int        # 1-based index in the notebook's full cell list
    first_line: int  # 1-based line of the cell's first line in the virtual module
    line_count: int


def _source_text(cell: dict) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        if not all(isinstance(s, str) for s in src):
            raise NotebookError("a cell's source list holds a non-string item")
        return "".join(src)
    if isinstance(src, str):
        return src
    raise NotebookError("a cell's source is neither a string nor a list of strings")


def mask_magics(text: str) -> tuple[str, frozenset[int]]:
    """Return the cell's text with IPython-only lines commented out, and the masked
    1-based line numbers (edits must not touch them)."""
    lines = text.split("\n")
    masked: set[int] = set()
    first = lines[0].lstrip() if lines else ""
    if first.startswith("%%"):
        magic = first[2:].split(None, 1)[0] if len(first) > 2 else ""
        whole_cell = magic not in PYTHON_BODY_CELL_MAGICS
        for i, line in enumerate(lines):
            if i == 0 or (whole_cell and line.strip()):
                lines[i] = _comment_out(line)
                masked.add(i + 1)
        if whole_cell:
            return "\n".join(lines), frozenset(masked)
    start = 1 if masked else 0  # the `%%time` line itself is already masked
    for i, is_magic in enumerate(magic_lines(lines[start:], _is_line_magic), start):
        if is_magic:
            lines[i] = _comment_out(lines[i])
            masked.add(i + 1)
    return "\n".join(lines), frozenset(masked)


def _is_line_magic(line: str) -> bool:
    """Is this line, where a statement starts, IPython syntax (magic, shell, help)?"""
    s = line.strip()
    if not s or s.startswith("#"):
        return False
    if s[0] in "%!?":
        return True
    if s.endswith("?") and not s.startswith(("'", '"')) and "#" not in s \
            and s.rstrip("?").replace(".", "").replace("_", "").isalnum():
        return True  # `model?`, `torch.nn.Linear??`
    return bool(_ASSIGNED_MAGIC.match(line))


def _comment_out(line: str) -> str:
    stripped = line.lstrip()
    indent = len(line) - len(stripped)
    return line[:indent] + "#" + stripped[1:] if stripped else line


@dataclass
class Notebook:
    raw: str
    data: dict
    cell_texts: list[Optional[str]]  # None for non-code cells
    indent: Optional[int]
    ensure_ascii: bool
    trailing_newline: bool

    @classmethod
    def parse(cls, raw: str) -> "Notebook":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise NotebookError(_json_problem(raw, exc)) from None
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise NotebookError("not a Jupyter notebook: no 'cells' list at the top level")
        texts: list[Optional[str]] = []
        for i, cell in enumerate(data["cells"], 1):
            if not isinstance(cell, dict):
                raise NotebookError(f"cell {i} is not a JSON object")
            if cell.get("cell_type") == "code":
                try:
                    texts.append(_source_text(cell))
                except NotebookError as exc:
                    raise NotebookError(f"cell {i}: {exc}") from None
            else:
                texts.append(None)
        indent = _detect_indent(raw)
        return cls(raw, data, texts, indent, "\\u" in raw and not _has_non_ascii(raw), raw.endswith("\n"))

    def dumps(self, data: dict) -> str:
        text = json.dumps(data, indent=self.indent, ensure_ascii=self.ensure_ascii)
        return text + ("\n" if self.trailing_newline else "")

    def keeps_layout(self) -> bool:
        return self.dumps(self.data) == self.raw


def _json_problem(raw: str, exc: json.JSONDecodeError) -> str:
    if not raw.strip():
        return "the notebook file is empty (a notebook is a JSON document with a 'cells' list)"
    if exc.pos >= len(raw.rstrip()):
        # The parser ran out of text: the file was cut short (an interrupted save or copy).
        return (f"the notebook's JSON ends early, at line {exc.lineno}, before its closing brackets: "
                "the file looks truncated (was it saved or copied completely?)")
    what = exc.msg[0].lower() + exc.msg[1:]
    return f"the notebook is not valid JSON: {what} at line {exc.lineno}, column {exc.colno}"


def _detect_indent(raw: str) -> Optional[int]:
    m = re.search(r"\n( +)\S", raw)
    return len(m.group(1)) if m else None


def _has_non_ascii(raw: str) -> bool:
    return any(ord(c) > 127 for c in raw)


def set_cell_source(cell: dict, text: str) -> None:
    """Store new source in the form the cell had (list of lines or one string)."""
    if isinstance(cell.get("source"), list):
        cell["source"] = text.splitlines(keepends=True)
    else:
        cell["source"] = text
