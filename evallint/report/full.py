"""The default terminal format: each finding with its header, its message wrapped
under it, the flagged lines with two lines of context and a marker under the span,
and the fix on offer as a short diff.

```
train.py:64:9: EL101 [accumulator-overwrite] [*]
  `correct` is overwritten on every batch, so after the loop it holds the last
  batch only; accumulate it with `+=`
    |
 62 |         total += labels.size(0)
 63 |         outputs = model(images)
 64 |         correct = (outputs.argmax(1) == labels).sum().item()
    |         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ EL101
 65 | print(correct / total)
    |
    = fix (safe): Accumulate `correct` with `+=`
 64 -         correct = (outputs.argmax(1) == labels).sum().item()
 64 +         correct += (outputs.argmax(1) == labels).sum().item()
```
Source code keeps the terminal's normal colour; only the frame and markers are styled.
"""
from __future__ import annotations

import io
import re
import textwrap

from rich.console import Console
from rich.text import Text

from ..textpos import LineIndex, apply_text_edits
from . import location, notebook_note, summary

_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold blue"}
_MAX_SHOWN = 6        # flagged lines shown in full; longer spans show first and last
_CONTEXT = 2          # lines of context before and after
_LOOK_BACK = 6        # how far above the context to look for the flagged name's start
_MAX_DIFF_LINES = 8
_WIDTH = 100
_NAME = re.compile(r"`([A-Za-z_][\w.]*)`")


def render(diagnostics, ctx) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=ctx.color, no_color=not ctx.color, width=_WIDTH + 100,
                      highlight=False, soft_wrap=True, color_system="standard" if ctx.color else None)
    for d in diagnostics:
        _one(console, d, ctx.sources.get(d.path))
    note = notebook_note(diagnostics)
    if note:
        console.print(Text(note, style="dim"))
    console.print(Text(summary(diagnostics, ctx), style="bold"))
    return buf.getvalue()


def _one(console: Console, d, source) -> None:
    style = _STYLE[d.severity.value]
    head = Text()
    head.append(location(d), style="bold")
    head.append(": ")
    head.append(d.code, style=style)
    head.append(f" [{d.name}]", style="dim")
    if d.fix:
        head.append(" [*]", style="cyan")
    console.print(head)
    for line in textwrap.wrap(d.message, width=_WIDTH - 2, break_on_hyphens=False) or [""]:
        console.print(Text("  " + line))
    rows = _rows(d, source)
    if rows:
        width = max(len(str(n)) for n, _ in rows if n is not None)
        _frame(console, d, rows, width, style)
    else:
        width = len(str(d.end_line))
    if d.fix:
        _fix(console, d, source, width)
    console.print()


def _line_of(d, source):
    """1-based line -> the user's text of it (cell-relative in notebooks), or None."""
    if source is not None:
        count = _line_count(source, d.cell)
        return lambda n: source.line_text(n, d.cell) if 1 <= n <= count else None
    flagged = dict(zip(range(d.line, d.line + len(d.source_lines)), d.source_lines))
    return flagged.get


def _line_count(source, cell) -> int:
    if cell is not None and source.notebook is not None:
        text = source.notebook.cell_texts[cell - 1] or ""
        return len(text.split("\n")) - (1 if text.endswith("\n") else 0)
    text = source.text
    return source.index.line_count - (1 if text.endswith("\n") else 0)


def _rows(d, source) -> list:
    """(line number or None for a gap, text) for the frame."""
    text_of = _line_of(d, source)
    if text_of(d.line) is None:
        return []
    flagged = list(range(d.line, d.end_line + 1))
    if len(flagged) > _MAX_SHOWN:
        flagged = flagged[: _MAX_SHOWN - 1] + [None] + flagged[-1:]
    before = [n for n in range(d.line - _CONTEXT, d.line) if text_of(n) is not None]
    after = [n for n in range(d.end_line + 1, d.end_line + 1 + _CONTEXT) if text_of(n) is not None]
    while after and not (text_of(after[-1]) or "").strip():
        after.pop()  # trailing blank context says nothing
    start = _name_start(d, text_of, (before or [d.line])[0])
    numbers = ([start, None] if start is not None else []) + before + flagged + after
    if start is not None and before and start == before[0] - 1:
        numbers = [start] + before + flagged + after   # contiguous: no gap
    return [(n, text_of(n) if n is not None else None) for n in numbers]


def _name_start(d, text_of, first_shown: int):
    """A line shortly above the context that starts a name the message quotes
    (`correct = 0` above an overwritten accumulator), so the reader sees it."""
    names = [n for n in _NAME.findall(d.message) if n.isidentifier()]
    if not names:
        return None
    pattern = re.compile(r"^\s*(?:%s)\s*(?::[^=]*)?=[^=]" % "|".join(map(re.escape, names)))
    for n in range(first_shown - 1, max(first_shown - 1 - _LOOK_BACK, 0), -1):
        text = text_of(n)
        if text is not None and pattern.match(text):
            return n
    return None


def _frame(console: Console, d, rows, width: int, style: str) -> None:
    gutter = " " * width
    console.print(Text(f"{gutter} |", style="blue"))
    for n, text in rows:
        if n is None:
            console.print(Text(f"{'':>{width}} :", style="blue"))
            continue
        row = Text(f"{n:>{width}} | ", style="blue")
        row.append(_plain(text))
        console.print(row)
        if d.line <= n <= d.end_line:
            start, end = _marker_span(d, n, _plain(text))
            if end > start:
                mark = Text(f"{gutter} | ", style="blue")
                mark.append(" " * start)
                mark.append("^" * (end - start), style=style)
                if n == d.end_line:
                    mark.append(f" {d.code}", style=style)
                console.print(mark)
    console.print(Text(f"{gutter} |", style="blue"))


def _plain(text: str) -> str:
    return text.expandtabs(4) if "\t" in text else text


def _fix(console: Console, d, source, width: int) -> None:
    gutter = " " * width
    console.print(Text(f"{gutter} = fix ({d.fix.applicability.value}): ", style="cyan") + Text(d.fix.message))
    for sign, n, text in _fix_diff(d, source)[:_MAX_DIFF_LINES]:
        colour = "red" if sign == "-" else "green"
        row = Text(f"{n if n is not None else '':>{width}} ", style="blue")
        row.append(sign, style=colour)
        row.append(" " + _plain(text))
        console.print(row)


def _fix_diff(d, source) -> list:
    """(sign, line, text): the lines the fix changes, before and after."""
    if source is None or not d.fix.edits:
        return []
    first = min(e.line for e in d.fix.edits)
    last = max(e.end_line for e in d.fix.edits)
    old_lines = [source.line_text(n, d.cell) for n in range(first, last + 1)]
    old = "\n".join(old_lines)
    index = LineIndex(old)
    try:
        spans = [(index.offset(e.line - first + 1, e.column - 1), index.offset(e.end_line - first + 1, e.end_column - 1),
                  e.content) for e in d.fix.edits]
        new_lines = apply_text_edits(old, spans).split("\n")
    except (ValueError, IndexError):
        return []
    # Lines the fix leaves as they were are context, not change: drop them from both ends.
    while len(old_lines) > 0 and len(new_lines) > 0 and old_lines[0] == new_lines[0]:
        old_lines, new_lines, first = old_lines[1:], new_lines[1:], first + 1
    while old_lines and new_lines and old_lines[-1] == new_lines[-1]:
        old_lines, new_lines = old_lines[:-1], new_lines[:-1]
    out = [("-", first + i, line) for i, line in enumerate(old_lines)]
    out += [("+", first + i, line) for i, line in enumerate(new_lines)]
    if len(out) > _MAX_DIFF_LINES:
        out = out[: _MAX_DIFF_LINES - 1] + [(" ", None, "...")]
    return out


def _marker_span(d, n: int, text: str) -> tuple[int, int]:
    start = d.column - 1 if n == d.line else len(text) - len(text.lstrip())
    end = d.end_column - 1 if n == d.end_line else len(text.rstrip())
    if d.line == d.end_line and end <= start:
        end = start + 1  # a point (e.g. a syntax error): one caret
    return max(start, 0), max(end, 0)
