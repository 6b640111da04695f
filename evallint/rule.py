"""The rule model: a rule reads the shared facts of one module and reports findings.

A rule class carries its own documentation (the class docstring, in the sections
What it does / Why it is wrong / Example / Fix / References) and its VALID and INVALID
examples, which the test suite runs for every rule. The engine knows rules only
through this interface.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Iterable, Iterator, Optional, Sequence, Union

import libcst as cst

from .diagnostic import Applicability, Severity

if TYPE_CHECKING:  # pragma: no cover
    from .facts import ModuleFacts

Replacement = Union[cst.CSTNode, cst.FlattenSentinel, cst.RemovalSentinel]


@dataclass(frozen=True)
class Change:
    """Replace one node of the module's tree (by identity) with another."""

    old: cst.CSTNode
    new: Replacement


@dataclass(frozen=True)
class NodeFix:
    """A fix expressed on the tree; the engine turns it into text edits."""

    applicability: Applicability
    message: str
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class Finding:
    """What a rule reports: the node to flag, the message, an optional fix."""

    node: cst.CSTNode
    message: str
    fix: Optional[NodeFix] = None


@dataclass(frozen=True)
class Valid:
    """Correct code that must stay silent."""

    code: str
    path: str = "example.py"

    @property
    def source(self) -> str:
        return textwrap.dedent(self.code).lstrip("\n")


@dataclass(frozen=True)
class Invalid:
    """Buggy code the rule must flag at (line, column); `fixed` is the text after all
    of the rule's fixes (safe and unsafe) are applied, None when the rule offers none."""

    code: str
    line: int
    column: int = 0  # 0: any column
    fixed: Optional[str] = None
    path: str = "example.py"
    message_contains: str = ""

    @property
    def source(self) -> str:
        return textwrap.dedent(self.code).lstrip("\n")

    @property
    def fixed_source(self) -> Optional[str]:
        return None if self.fixed is None else textwrap.dedent(self.fixed).lstrip("\n")


class Rule:
    """Base class of all rules. Subclasses set the class attributes and `check`."""

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    severity: ClassVar[Severity] = Severity.WARNING
    # The strongest fix the rule can offer (None: it only explains).
    fixable: ClassVar[Optional[Applicability]] = None
    # Prefilter: substrings without which the rule cannot fire. A flat tuple means
    # "any of these"; a tuple of tuples means "any of each group". The rule's check
    # must itself require what the tokens stand for, so skipping changes no result.
    tokens: ClassVar[tuple] = ()
    # The kind of evidence `evallint replay` collects for this rule's findings (see
    # evallint/replay/probes.py: "metric", "mode", "grad", "overlap"); None: not replayable.
    replay_probe: ClassVar[Union[str, tuple[str, ...], None]] = None
    replayable: ClassVar[bool] = False  # derived from replay_probe
    VALID: ClassVar[Sequence[Union[str, Valid]]] = ()
    INVALID: ClassVar[Sequence[Invalid]] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.replayable = cls.replay_probe is not None

    def check(self, facts: "ModuleFacts") -> Iterable[Finding]:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def may_fire(cls, text: str) -> bool:
        groups = cls.tokens
        if not groups:
            return True
        if isinstance(groups[0], str):
            groups = (groups,)
        return all(any(tok in text for tok in group) for group in groups)

    # Helpers for subclasses -------------------------------------------------------
    @staticmethod
    def fix(applicability: Applicability, message: str, *changes: Change) -> NodeFix:
        return NodeFix(applicability, message, tuple(changes))

    @classmethod
    def documentation(cls) -> str:
        return textwrap.dedent(cls.__doc__ or "").strip()

    @classmethod
    def valid_examples(cls) -> Iterator[Valid]:
        for ex in cls.VALID:
            yield ex if isinstance(ex, Valid) else Valid(ex)

    @classmethod
    def docs_url(cls) -> str:
        return f"https://evallint.dev/rules/{cls.code}"


def is_rule_class(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule and hasattr(obj, "code")
