"""The stale-variable probe's set-up: which name is stale, and a world whose batches
all have one size (a stale batch tensor then meets every evaluation batch without a
shape error, and the metric shows what it reads)."""
from __future__ import annotations

import dataclasses
import re

from .world import World

_IDENT = re.compile(r"[A-Za-z_]\w*")


def stale_roles(text: str, line: int, diag) -> dict:
    """{name: "stale"} for the identifier the finding points at, else {}."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return {}
    m = _IDENT.match(lines[line - 1], max(diag.column - 1, 0))
    return {m.group(0): "stale"} if m else {}


def stale_world(world: World) -> World:
    return dataclasses.replace(world, n=world.batch_size * 16)
