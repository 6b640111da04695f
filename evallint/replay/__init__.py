"""`evallint replay`: run a finding's evaluation region on synthetic data, as written
and with the fix, in a child process, and compare with the ground truth.

The CLI calls `run_replay(...)` and `render(report, fmt)`; `report.exit_code` is
1 when a finding is confirmed, 2 when replay cannot run (no torch, no CUDA for
`--device cuda`), 0 otherwise. torch is never imported by this package: only the
child process imports it. Imports here are lazy so that the child stays light.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .report import FindingReplay, ReplayReport

__all__ = ["run_replay", "cli_replay", "replay_diagnostics", "replay_sources", "render", "ReplayReport", "FindingReplay", "PROBES"]


def run_replay(path: str, select, device: str, seed: int, settings, rules, **kwargs: Any) -> "ReplayReport":
    from .run import run_replay as _run

    return _run(path, select, device, seed, settings, rules, **kwargs)


def cli_replay(path: str, select, device: str, seed: int, fmt: str, settings, rules) -> int:
    from .run import cli_replay as _cli

    return _cli(path, select, device, seed, fmt, settings, rules)


def replay_diagnostics(source, diagnostics, rules, **kwargs: Any) -> "ReplayReport":
    from .run import replay_diagnostics as _run

    return _run(source, diagnostics, rules, **kwargs)


def replay_sources(items, rules, **kwargs: Any) -> "list[ReplayReport]":
    from .run import replay_sources as _run

    return _run(items, rules, **kwargs)


def render(report: "ReplayReport", fmt: str = "text") -> str:
    from .render import render as _render

    return _render(report, fmt)


def __getattr__(name: str) -> Any:
    if name in ("ReplayReport", "FindingReplay"):
        from . import report

        return getattr(report, name)
    if name == "PROBES":
        from .probes import PROBES

        return PROBES
    raise AttributeError(name)
