"""A progress bar on stderr for long runs on a terminal; nothing otherwise.

It appears only once a run has taken about a second (short runs stay quiet) and
disappears when the run ends, so the findings printed after it are all that remains.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Optional

from .runner import Progress

SHOW_AFTER_S = 1.0


@contextmanager
def progress_bar(enabled: bool, color: Optional[bool] = None) -> Iterator[Optional[Progress]]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, no_color=color is False)
    bar = Bar(TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
              console=console, transient=True)
    started = time.monotonic()
    state = {"task": None}

    def update(done: int, total: int) -> None:
        if state["task"] is None:
            if time.monotonic() - started < SHOW_AFTER_S or done >= total:
                return
            bar.start()
            state["task"] = bar.add_task("check", total=total)
        bar.update(state["task"], completed=done)

    try:
        yield update
    finally:
        if state["task"] is not None:
            bar.stop()
