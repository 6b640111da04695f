"""What replay found: one row per finding, and the run as a whole."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

CONFIRMED = "confirmed"
NOT_REPRODUCED = "not reproduced"
NOT_REPLAYABLE = "not replayable"


@dataclass(frozen=True)
class FindingReplay:
    code: str
    line: int
    verdict: str                     # confirmed | not reproduced | not replayable
    reason: str = ""                 # why (always set for not replayable)
    probe: Optional[str] = None      # which probe judged it
    metric: Optional[str] = None     # the metric variable or expression
    written: Optional[str] = None    # value as written, for display
    fixed: Optional[str] = None      # value after the fix
    truth: Optional[str] = None      # ground truth
    written_value: Optional[float] = None
    fixed_value: Optional[float] = None
    truth_value: Optional[float] = None
    together: Optional[str] = None   # with the fixes of the findings sharing the metric
    together_value: Optional[float] = None
    seconds: Optional[float] = None  # child time spent on this finding
    cell: Optional[int] = None       # notebooks: the cell the line counts in, as `check` shows it

    @property
    def verdict_text(self) -> str:
        if self.verdict == NOT_REPLAYABLE:
            return f"{NOT_REPLAYABLE}: {self.reason}"
        return self.verdict

    def to_json(self) -> dict:
        data = asdict(self)
        data["verdict_text"] = self.verdict_text
        return data


@dataclass(frozen=True)
class ReplayReport:
    path: str
    device: Optional[str] = None     # the device that ran, e.g. "cpu" or "cuda (NVIDIA H100)"
    torch_version: Optional[str] = None
    findings: tuple[FindingReplay, ...] = ()
    error: Optional[str] = None      # the whole replay could not run (no torch, no CUDA, ...)
    seconds: float = 0.0
    seed: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def confirmed(self) -> int:
        return sum(1 for f in self.findings if f.verdict == CONFIRMED)

    @property
    def exit_code(self) -> int:
        """2: replay could not run (torch missing, CUDA requested but absent);
        1: at least one finding confirmed; 0: otherwise."""
        if self.error:
            return 2
        return 1 if self.confirmed else 0

    def to_json(self) -> dict:
        return {"path": self.path, "device": self.device, "torch": self.torch_version, "seed": self.seed,
                "error": self.error, "seconds": round(self.seconds, 3), "confirmed": self.confirmed,
                "findings": [f.to_json() for f in self.findings], "notes": list(self.notes)}
