"""The batch runner's collector policy: off during a file, one collection after it."""
from __future__ import annotations

import gc
import weakref

from evallint.gcpolicy import one_collection_per_file


class _Node:
    pass


def _cycle() -> weakref.ref:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_the_collector_is_off_inside_and_the_files_cycles_are_freed_after():
    assert gc.isenabled()
    with one_collection_per_file():
        assert not gc.isenabled()
        ref = _cycle()
        assert ref() is not None  # nothing collects it while the file is checked
    assert gc.isenabled()
    assert ref() is None


def test_a_collector_turned_off_by_the_caller_stays_off():
    gc.disable()
    try:
        with one_collection_per_file():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_when_the_check_raises():
    try:
        with one_collection_per_file():
            raise ValueError("a rule bug")
    except ValueError:
        pass
    assert gc.isenabled()
