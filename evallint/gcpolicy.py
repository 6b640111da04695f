"""One garbage collection per checked file, instead of hundreds during it.

A parse allocates a tree of a few hundred thousand nodes. With the collector's default
thresholds, the young generation is collected every 700 allocations and the whole heap
every so often, each time walking the tree that is being built: a tenth of a check.
The tree itself holds no reference cycles, so reference counting frees it; only the
facts built over it (statements that point at their blocks and back) need the
collector. So while a file is checked the automatic collector is off, and once the
file is done one collection of the young generation frees that file's cycles, which
bounds memory by the biggest file rather than the run.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def one_collection_per_file():
    if not gc.isenabled():  # someone turned it off on purpose: leave it so
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(0)
