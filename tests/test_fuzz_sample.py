"""A small seeded sample of the fuzzing harness (benchmarks/fuzz.py runs thousands):
random programs with an ML preamble and mutants of the project's own fixtures go
through the real CLI; check never crashes, fix leaves parseable files, a second fix
changes nothing."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import REPO


def _harness():
    spec = importlib.util.spec_from_file_location("evallint_fuzz", REPO / "benchmarks" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_mutations_change_the_fixtures_and_are_seeded():
    fuzz = _harness()
    a, b = fuzz.programs(3, 8), fuzz.programs(3, 8)
    assert a == b                                   # seeded: a failure can be replayed
    originals = {text for _, text in fuzz.fixture_sources()}
    assert sum(1 for _, text in a if text not in originals) >= 6
    assert any(name.startswith("mut_") for name, _ in a)


@pytest.mark.timeout(600)
def test_fuzz_sample_through_the_cli(tmp_path):
    fuzz = _harness()
    batch = fuzz.programs(20261201, 16)
    result = fuzz.check_batch(tmp_path / "batch", batch, jobs=1)
    assert result.programs == 16
    assert result.failures == []
