"""The values every part of evallint exchanges: edits, fixes and diagnostics.

Positions are 1-based lines and 1-based columns counted in characters (code points).
In a notebook, `cell` is the 1-based index of the cell in the notebook's cell list and
`line` is the line inside that cell.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Optional


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


class Applicability(str, enum.Enum):
    SAFE = "safe"      # keeps behaviour except for the bug
    UNSAFE = "unsafe"  # may change intent: needs --unsafe-fixes


@dataclass(frozen=True)
class Edit:
    """Replace the text between two positions (end exclusive) with `content`."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str
    cell: Optional[int] = None

    def to_json(self) -> dict:
        return {"line": self.line, "column": self.column, "end_line": self.end_line,
                "end_column": self.end_column, "content": self.content}


@dataclass(frozen=True)
class Fix:
    applicability: Applicability
    message: str
    edits: tuple[Edit, ...]

    def to_json(self) -> dict:
        return {"applicability": self.applicability.value, "message": self.message,
                "edits": [e.to_json() for e in self.edits]}


@dataclass(frozen=True)
class Diagnostic:
    code: str
    name: str
    severity: Severity
    message: str
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    cell: Optional[int] = None
    fix: Optional[Fix] = None
    # The text of the flagged line(s) as the user sees them (cell-relative in notebooks);
    # used by reporters for context and by baselines for fingerprints.
    source_lines: tuple[str, ...] = field(default=(), compare=False)
    # Project view: assumptions about callers in other modules the finding was made
    # under; the run drops it when those callers contradict them.
    depends_on: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict:
        return {
            "code": self.code, "name": self.name, "severity": self.severity.value,
            "message": self.message, "path": self.path, "line": self.line,
            "column": self.column, "end_line": self.end_line, "end_column": self.end_column,
            "cell": self.cell, "fix": self.fix.to_json() if self.fix else None,
        }

    def with_path(self, path: str) -> "Diagnostic":
        return replace(self, path=path)

    @property
    def sort_key(self) -> tuple:
        return (self.path, self.cell or 0, self.line, self.column, self.code)


def diagnostic_from_json(data: dict, source_lines: tuple[str, ...] = ()) -> Diagnostic:
    """Inverse of Diagnostic.to_json (used by the cache)."""
    fix = None
    if data.get("fix"):
        f = data["fix"]
        fix = Fix(Applicability(f["applicability"]), f["message"],
                  tuple(Edit(e["line"], e["column"], e["end_line"], e["end_column"], e["content"], data.get("cell"))
                        for e in f["edits"]))
    return Diagnostic(data["code"], data["name"], Severity(data["severity"]), data["message"], data["path"],
                      data["line"], data["column"], data["end_line"], data["end_column"], data.get("cell"),
                      fix, tuple(source_lines))
