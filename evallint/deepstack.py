"""Run work on a thread with a large stack.

libcst's native parser and its Python code generator recurse once per nesting level:
a few thousand nested terms overflow the main thread's 8 MB C stack and kill the
process (a segfault, not an exception). A thread with a 512 MB stack (reserved, not
committed) and a matching recursion limit turns such files into results, or at worst
into a RecursionError that the caller reports.
"""
from __future__ import annotations

import sys
import threading
from typing import Callable, TypeVar

T = TypeVar("T")

STACK_BYTES = 512 * 1024 * 1024
RECURSION_LIMIT = 60_000  # ~8 KB of stack per Python frame at most: fits in 512 MB
_lock = threading.Lock()


def call_with_big_stack(fn: Callable[..., T], *args, **kwargs) -> T:
    if getattr(_local, "inside", False):
        return fn(*args, **kwargs)  # already on a big stack
    box: dict = {}

    def run() -> None:
        _local.inside = True
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    with _lock:  # stack_size() is process-wide: set it only while creating our thread
        old = threading.stack_size(STACK_BYTES)
        try:
            thread = threading.Thread(target=run, name="evallint-deep", daemon=True)
            thread.start()
        finally:
            threading.stack_size(old)
    if sys.getrecursionlimit() < RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


_local = threading.local()
