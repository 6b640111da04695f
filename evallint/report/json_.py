"""The JSON contract of DESIGN.md: a list, one object per diagnostic."""
from __future__ import annotations

import json


def render(diagnostics, ctx) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2, ensure_ascii=False) + "\n"
