"""`--shard K/N`: the part of a run's files that runner K of N checks.

A file's shard is a hash of its path relative to the project root (posix
separators), so every runner computes the same partition from its own checkout,
whatever folder it is checked out in and whatever else it runs, and a file stays on
its shard while others are added or removed (a per-shard cache stays warm). A
size-balanced partition would be a little more even but moves files between shards
whenever sizes change. Python's `hash()` is salted per process: never used here.

Exactness: in a project run a file's findings may depend on the summaries of the
modules it imports and of its callers. Those files, when they belong to other shards,
are checked here too, silently (their findings are their own shard's to report), so
the shards together report exactly what one unsharded run reports.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .config import Settings, relative_posix


class ShardError(ValueError):
    pass


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" with 1 <= K <= N -> (K, N)."""
    k, sep, n = text.partition("/")
    try:
        kk, nn = int(k), int(n)
    except ValueError:
        raise ShardError(f"--shard wants K/N, e.g. 1/4 (got {text!r})") from None
    if not sep or nn < 1 or not 1 <= kk <= nn:
        raise ShardError(f"--shard wants K/N with 1 <= K <= N (got {text!r})")
    return kk, nn


def shard_of(path: str, root: Path, count: int) -> int:
    """The 1-based shard of a file."""
    rel = relative_posix(path, root)
    digest = hashlib.sha256(rel.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def split(files: list[str], settings: Settings, shard: tuple[int, int]) -> tuple[list[str], set[str]]:
    """(the files this run must analyse, the files whose results it reports)."""
    from .project_run import plan_project

    k, n = shard
    own = {f for f in files if shard_of(f, settings.root, n) == k}
    plan = plan_project(files, settings)
    if plan is None:
        return [f for f in files if f in own], own
    # Every file in the import graph of the whole run feeds summaries or caller
    # facts to the others: keep them all, report only our own.
    linked = {i for i, d in enumerate(plan.deps) if d} | {i for i, imp in enumerate(plan.imported) if imp}
    return [f for i, f in enumerate(files) if f in own or i in linked], own
