"""Bytes to text and back: encodings, BOM, newline style, notebooks.

A Source is the unit the engine checks. Its `text` is the Python text that is
parsed: the file's decoded text, or for a notebook the virtual module made of all
code cells with magics masked. Edits coming back from rules are applied here, and
`to_bytes` writes the result in the file's own encoding, BOM, newlines or JSON layout.
"""
from __future__ import annotations

import copy
import io
import tokenize
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Optional

from .diagnostic import Edit
from .notebook import CellSpan, Notebook, NotebookError, mask_magics, set_cell_source
from .textpos import LineIndex, apply_text_edits


class SourceError(Exception):
    """A file that cannot be read as Python source or as a notebook. `line`, `column`
    and `line_text` say where, when a place is known (1-based, characters)."""

    def __init__(self, message: str, line: int = 1, column: int = 1, line_text: Optional[str] = None) -> None:
        super().__init__(message)
        self.line, self.column, self.line_text = line, column, line_text


def _decode_error(data: bytes, encoding: str, exc: UnicodeDecodeError, what: str) -> SourceError:
    """Which byte, at which line and column, is not valid in which encoding."""
    start = exc.start
    line_start = data.rfind(b"\n", 0, start) + 1
    line = data.count(b"\n", 0, start) + 1
    line_end = data.find(b"\n", start)
    raw_line = data[line_start: line_end if line_end >= 0 else len(data)]
    prefix = data[line_start:start].decode(encoding, "replace")
    bad = data[start: max(exc.end, start + 1)]
    shown = " ".join(f"0x{b:02x}" for b in bad[:4])
    byte_word = "byte" if len(bad) == 1 else "bytes"
    return SourceError(
        f"{what} cannot be decoded as {encoding}: {byte_word} {shown} at line {line}, column {len(prefix) + 1} "
        f"is not valid {encoding}; save the file as UTF-8"
        + (" or declare its encoding with a '# -*- coding: ... -*-' line" if what == "the file" else ""),
        line, len(prefix) + 1, raw_line.decode(encoding, "replace").rstrip("\r"))


@dataclass
class Source:
    path: str
    text: str
    kind: str = "python"              # "python" | "notebook"
    encoding: str = "utf-8"
    notebook: Optional[Notebook] = None
    cell_spans: tuple[CellSpan, ...] = ()
    masked_lines: frozenset[int] = field(default_factory=frozenset)  # virtual lines

    # Construction ---------------------------------------------------------------
    @classmethod
    def read(cls, path: str) -> "Source":
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read file: {exc.strerror or exc}") from None
        return cls.from_bytes(data, path)

    @classmethod
    def from_bytes(cls, data: bytes, path: str) -> "Source":
        if path.endswith(".ipynb"):
            try:
                raw = data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8")
            except UnicodeDecodeError as exc:
                raise _decode_error(data, "utf-8", exc, "the notebook") from None
            return cls.from_text(raw, path, notebook=True)
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError as exc:
            # tokenize says "invalid or missing encoding declaration" when the first
            # lines are not UTF-8 and no cookie names another encoding: say which byte.
            if "unknown encoding" in str(exc):
                raise SourceError(f"the file's encoding declaration names an encoding Python does not know "
                                  f"({exc})") from None
            if "encoding problem" in str(exc):
                raise SourceError(f"the file starts with a UTF-8 byte order mark but its coding line says "
                                  f"otherwise ({exc})") from None
            encoding = "utf-8"
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise _decode_error(data, encoding, exc, "the file") from None
        except LookupError as exc:
            raise SourceError(f"the file declares the encoding {encoding}, which Python does not know ({exc})") \
                from None
        if text.startswith("\ufeff"):
            text = text[1:]
        if "\x00" in text:
            raise SourceError("the file contains NUL bytes; it is not Python source")
        return cls(path=path, text=text, encoding=encoding)

    @classmethod
    def from_text(cls, text: str, path: str, notebook: bool = False) -> "Source":
        if not notebook:
            return cls(path=path, text=text)
        try:
            nb = Notebook.parse(text)
        except NotebookError as exc:
            raise SourceError(str(exc)) from None
        return cls._from_notebook(path, nb)

    @classmethod
    def _from_notebook(cls, path: str, nb: Notebook) -> "Source":
        parts: list[str] = []
        spans: list[CellSpan] = []
        masked: set[int] = set()
        line = 1
        for index, cell_text in enumerate(nb.cell_texts, 1):
            if cell_text is None:
                continue
            body, cell_masked = mask_magics(cell_text)
            if not body.endswith("\n"):
                body += "\n"
            count = body.count("\n")
            spans.append(CellSpan(index, line, count))
            masked.update(line + m - 1 for m in cell_masked)
            parts.append(body)
            line += count
        return cls(path=path, text="".join(parts), kind="notebook", notebook=nb,
                   cell_spans=tuple(spans), masked_lines=frozenset(masked))

    # Positions ------------------------------------------------------------------
    @cached_property
    def index(self) -> LineIndex:
        return LineIndex(self.text)

    def to_cell(self, line: int) -> tuple[Optional[int], int]:
        """Virtual line -> (cell, line inside the cell); (None, line) for .py files."""
        for span in self.cell_spans:
            if span.first_line <= line < span.first_line + span.line_count:
                return span.cell, line - span.first_line + 1
        if self.cell_spans:
            last = self.cell_spans[-1]
            return last.cell, line - last.first_line + 1
        return None, line

    def to_virtual(self, cell: Optional[int], line: int) -> int:
        if cell is None:
            return line
        for span in self.cell_spans:
            if span.cell == cell:
                return span.first_line + line - 1
        raise KeyError(f"no code cell {cell}")

    def line_text(self, line: int, cell: Optional[int] = None) -> str:
        """The user's own text of a line (unmasked, for notebooks)."""
        if cell is None or self.notebook is None:
            return self.index.line_text(line)
        text = self.notebook.cell_texts[cell - 1] or ""
        lines = text.split("\n")
        return lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""

    def cell_for_virtual_range(self, start_line: int, end_line: int) -> Optional[int]:
        """The cell holding a virtual line range, None if it crosses cells."""
        a, _ = self.to_cell(start_line)
        b, _ = self.to_cell(end_line)
        return a if a == b else None

    # Edits ----------------------------------------------------------------------
    def apply_edits(self, edits: Iterable[Edit]) -> "Source":
        """Return a new Source with non-overlapping edits applied.

        Edits are in the user's coordinates: cell-relative for notebooks.
        """
        edits = list(edits)
        if self.notebook is None:
            spans = [(self.index.offset(e.line, e.column - 1), self.index.offset(e.end_line, e.end_column - 1), e.content)
                     for e in edits]
            return Source(path=self.path, text=apply_text_edits(self.text, spans), encoding=self.encoding)
        by_cell: dict[int, list[Edit]] = {}
        for e in edits:
            if e.cell is None:
                raise ValueError("a notebook edit must name its cell")
            by_cell.setdefault(e.cell, []).append(e)
        data = copy.deepcopy(self.notebook.data)
        texts = list(self.notebook.cell_texts)
        for cell, cell_edits in by_cell.items():
            old = texts[cell - 1] or ""
            idx = LineIndex(old)
            spans = [(idx.offset(e.line, e.column - 1), idx.offset(e.end_line, e.end_column - 1), e.content)
                     for e in cell_edits]
            new = apply_text_edits(old, spans)
            # A cell keeps its own convention of ending (or not) with a newline.
            if not old.endswith("\n") and new.endswith("\n"):
                new = new[:-1]
            texts[cell - 1] = new
            set_cell_source(data["cells"][cell - 1], new)
        nb = Notebook(raw=self.notebook.dumps(data), data=data, cell_texts=texts,
                      indent=self.notebook.indent, ensure_ascii=self.notebook.ensure_ascii,
                      trailing_newline=self.notebook.trailing_newline)
        return Source._from_notebook(self.path, nb)

    def serialized(self) -> str:
        """The file's own text: the notebook JSON for notebooks."""
        return self.notebook.raw if self.notebook is not None else self.text

    def to_bytes(self) -> bytes:
        if self.notebook is not None:
            return self.notebook.raw.encode("utf-8")
        return self.text.encode(self.encoding)

    def can_write_layout(self) -> bool:
        """Whether writing keeps the file's layout (notebook JSON style)."""
        return self.notebook is None or self.notebook.keeps_layout()
