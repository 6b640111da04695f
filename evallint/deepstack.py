"""Run work on a thread with a large stack.

libcst's native parser and its Python code generator recurse once per nesting level:
a few thousand nested terms overflow the main thread's 8 MB C stack and kill the
process (a segfault, not an exception). One long-lived worker thread with a 512 MB
stack (reserved, not committed) and a matching recursion limit turns such files into
results, or at worst into a RecursionError that the caller reports. The thread is kept
because a fresh thread per file costs about a quarter of a parse (cold stack and
allocator arena).
"""
from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, TypeVar

T = TypeVar("T")

STACK_BYTES = 512 * 1024 * 1024
RECURSION_LIMIT = 60_000  # ~8 KB of stack per Python frame at most: fits in 512 MB

_lock = threading.Lock()
_executor: Optional[ThreadPoolExecutor] = None
_owner_pid = -1
_local = threading.local()


def _worker() -> ThreadPoolExecutor:
    global _executor, _owner_pid
    with _lock:
        # After fork, a child has the executor object but not its thread: make a new one.
        if _executor is None or _owner_pid != os.getpid():
            old = threading.stack_size(STACK_BYTES)  # process-wide: only while creating
            try:
                executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evallint-deep",
                                              initializer=_mark_deep)
                executor.submit(int).result()  # start the thread now, with the big stack
            finally:
                threading.stack_size(old)
            if sys.getrecursionlimit() < RECURSION_LIMIT:
                sys.setrecursionlimit(RECURSION_LIMIT)
            _executor, _owner_pid = executor, os.getpid()
        return _executor


def _mark_deep() -> None:
    _local.deep = True


def call_with_big_stack(fn: Callable[..., T], *args, **kwargs) -> T:
    if getattr(_local, "deep", False):
        return fn(*args, **kwargs)  # already on the big stack
    return _worker().submit(fn, *args, **kwargs).result()
