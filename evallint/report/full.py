"""The default terminal format: each finding with its source lines, a marker under
the flagged span, the rule name, the message and the fix on offer."""
from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from . import fix_label, location, summary

_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold blue"}
_MAX_SHOWN = 6


def render(diagnostics, ctx) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=ctx.color, no_color=not ctx.color, width=200,
                      highlight=False, soft_wrap=True, color_system="standard" if ctx.color else None)
    for d in diagnostics:
        _one(console, d)
    console.print(Text(summary(diagnostics, ctx), style="bold"))
    return buf.getvalue()


def _one(console: Console, d) -> None:
    head = Text()
    head.append(location(d), style="bold")
    head.append(": ")
    head.append(d.code, style=_STYLE[d.severity.value])
    head.append(f" [{d.name}]", style="dim")
    if d.fix:
        head.append(" [*]", style="cyan")
    head.append(f" {d.message}")
    console.print(head)
    lines = list(d.source_lines) or [""]
    numbers = list(range(d.line, d.line + len(lines)))
    if len(lines) > _MAX_SHOWN:  # long spans: the first lines and the last one
        lines = lines[: _MAX_SHOWN - 1] + ["..."] + lines[-1:]
        numbers = numbers[: _MAX_SHOWN - 1] + [None] + [d.end_line]
    width = len(str(d.end_line))
    gutter = " " * width
    console.print(Text(f"{gutter} |", style="blue"))
    for n, text in zip(numbers, lines):
        row = Text(f"{n if n is not None else '':>{width}} | ", style="blue")
        row.append(text.expandtabs(4) if "\t" in text else text)
        console.print(row)
        if n is not None:
            start, end = _marker_span(d, n, text)
            if end > start:
                mark = Text(f"{gutter} | ", style="blue")
                mark.append(" " * start)
                mark.append("^" * (end - start), style=_STYLE[d.severity.value])
                if n == d.end_line or (n == d.line and d.line == d.end_line):
                    mark.append(f" {d.code}", style=_STYLE[d.severity.value])
                console.print(mark)
    label = fix_label(d)
    if label:
        console.print(Text(f"{gutter} = fix: ", style="cyan") + Text(label))
    console.print()


def _marker_span(d, n: int, text: str) -> tuple[int, int]:
    start = d.column - 1 if n == d.line else len(text) - len(text.lstrip())
    end = d.end_column - 1 if n == d.end_line else len(text.rstrip())
    if d.line == d.end_line and end <= start:
        end = start + 1  # a point (e.g. a syntax error): one caret
    return max(start, 0), max(end, 0)
