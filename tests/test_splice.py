"""`splice.reparse`: the tree of an edited text from the previous tree, parsing only
the top-level statements the edit touched (fix verification and the editor use it).
Whenever it gives a tree, that tree must be the tree a fresh parse gives."""
from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from evallint.fastparse import parse_module
from evallint.splice import reparse, statement_texts

from test_lsp_incremental import random_edit  # noqa: E402  (edits a person might make)

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (REPO / "fixtures").rglob("*.py") if not p.name.endswith(".fixed.py"))


def _same_as_fresh(old: str, new: str):
    tree = reparse(parse_module(old), old, new)
    if tree is not None:
        assert tree.code == new
        assert tree.deep_equals(parse_module(new))
    return tree


HELPER_FIRST = textwrap.dedent('''\
    # evaluation helpers
    import torch


    def accuracy(model, loader):
        correct = 0
        for x, y in loader:
            correct = (model(x).argmax(1) == y).sum().item()
        return correct


    def main():
        pass
''')


def test_the_first_block_of_the_file_is_spliced_when_it_keeps_the_indentation():
    new = HELPER_FIRST.replace("correct = (model", "correct += (model")
    assert _same_as_fresh(HELPER_FIRST, new) is not None


def test_a_first_block_that_changes_the_indentation_is_refused():
    new = HELPER_FIRST.replace("    correct = 0\n", "  correct = 0\n").replace(
        "    for x, y", "  for x, y").replace("        correct = (", "      correct = (").replace(
        "    return correct", "  return correct")
    parse_module(new)  # the edit is valid Python, with another indentation
    assert _same_as_fresh(HELPER_FIRST, new) is None


def test_removing_the_block_that_set_the_indentation_is_refused():
    text = "import torch\n\nif torch:\n  x = 1\nelse:\n  x = 2\n\n\ndef f():\n    return 1\n"
    new = text.replace("if torch:\n  x = 1\nelse:\n  x = 2\n", "x = 1 if torch else 2\n")
    assert _same_as_fresh(text, new) is None


def test_a_block_in_an_else_clause_sets_the_indentation_too():
    # The `else:` block set the indentation, so the block after it may go.
    text = "import torch\n\nif torch: x = 1\nelse:\n  x = 2\n\n\nif x:\n  y = 1\n"
    new = text.replace("if x:\n  y = 1\n", "y = 1 if x else 0\n")
    assert _same_as_fresh(text, new) is not None


def test_a_block_indented_unlike_the_file_is_refused():
    # Alone, `f` detects four spaces; in the file its block is written against two.
    text = "import torch\n\nif torch:\n  x = 1\n\n\ndef f():\n    return 1\n"
    assert _same_as_fresh(text, text.replace("return 1", "return 2")) is None


def test_the_first_statement_owns_no_header_and_is_refused():
    text = "# a header comment\nimport torch\nimport numpy\n\n\ndef f():\n    return 1\n"
    new = text.replace("import torch\n", "")
    assert _same_as_fresh(text, new) is None


def test_statements_on_one_line_are_one_piece():
    assert statement_texts("import torch\na = 1; b = 2\nc = 3") == ["import torch\n", "a = 1; b = 2\n", "c = 3"]
    assert statement_texts("def f(:\n") is None
    assert statement_texts("a = 1\r\nb = 2\r\n") is None


@pytest.mark.parametrize("path", SCRIPTS[::2], ids=lambda p: p.name)
def test_every_spliced_tree_of_random_edits_is_the_fresh_tree(path):
    try:
        text = path.read_text(encoding="utf-8")
        parse_module(text)
    except Exception:
        pytest.skip("the fixture does not decode or parse, on purpose")
    if statement_texts(text) is None:
        pytest.skip("carriage returns or a byte-order mark: never spliced")
    rng = random.Random(path.name)
    spliced = 0
    for _ in range(12):
        new = random_edit(text, rng)
        try:
            parse_module(new)
        except Exception:
            continue  # the edit broke the file: nothing to compare
        spliced += _same_as_fresh(text, new) is not None
        text = new
    assert spliced or len(text.splitlines()) < 30, "no edit of a real script was spliced"
