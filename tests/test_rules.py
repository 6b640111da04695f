"""Runs every rule's own VALID and INVALID examples, for every installed rule."""
from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from evallint.config import Settings
from evallint.fixer import fix_source
from evallint.engine import lint_source
from evallint.registry import load_rules
from evallint.source import Source

RULES = load_rules()


def _settings(code: str) -> Settings:
    return Settings(enabled=frozenset({code}), root=Path.cwd())


def _cases(kind):
    for rule in RULES.all():
        examples = rule.valid_examples() if kind == "valid" else rule.INVALID
        for i, ex in enumerate(examples):
            yield pytest.param(rule, ex, id=f"{rule.code}-{kind}-{i}")


def test_every_rule_has_examples_and_docs():
    for rule in RULES.all():
        doc = rule.documentation()
        for section in ("## What it does", "## Why it is wrong", "## Example", "## Fix", "## References"):
            assert section in doc, f"{rule.code} lacks {section}"
        assert len(list(rule.valid_examples())) >= 2, f"{rule.code} needs correct look-alikes"
        assert rule.INVALID, f"{rule.code} needs invalid examples"
        assert rule.tokens, f"{rule.code} must declare prefilter tokens"


@pytest.mark.parametrize("rule,example", list(_cases("valid")))
def test_valid_examples_stay_silent(rule, example):
    result = lint_source(Source.from_text(example.source, example.path), _settings(rule.code), RULES)
    assert not result.errors
    assert [d for d in result.diagnostics if d.code == rule.code] == []


@pytest.mark.parametrize("rule,example", list(_cases("invalid")))
def test_invalid_examples_fire_and_fix(rule, example):
    source = Source.from_text(example.source, example.path)
    settings = _settings(rule.code)
    result = lint_source(source, settings, RULES)
    assert not result.errors
    found = [d for d in result.diagnostics if d.code == rule.code]
    assert found, f"{rule.code} did not fire"
    first = found[0]
    assert first.line == example.line, (first.line, first.message)
    if example.column:
        assert first.column == example.column
    assert example.message_contains in first.message
    fixes = [d.fix for d in found if d.fix is not None]
    if rule.fixable is None:
        assert not fixes, f"{rule.code} declares no fix but offered one"
    for fix in fixes:
        assert fix.applicability.value in ("safe", "unsafe")
        if rule.fixable.value == "safe":
            continue
        assert fix.applicability.value == "unsafe", f"{rule.code} offered a safe fix but declares unsafe"
    outcome = fix_source(source, settings, RULES, unsafe=True)
    cst.parse_module(outcome.source.text)  # a fix never breaks the file
    if example.fixed_source is None:
        assert not outcome.changed, f"{rule.code}: unexpected fix:\n{outcome.source.text}"
    else:
        assert fixes, f"{rule.code} offered no fix"
        assert outcome.source.text == example.fixed_source
        again = fix_source(outcome.source, settings, RULES, unsafe=True)
        assert not again.changed, "fixing twice changed the file again"


def test_fixable_rules_show_a_fix_in_some_example():
    for rule in RULES.all():
        if rule.fixable is not None:
            assert any(ex.fixed is not None for ex in rule.INVALID), f"{rule.code} never shows its fix"
