"""The language server lints a change part by part (evallint/incremental.py): what it
publishes must equal a from-scratch `evallint check` of the same text, after any
sequence of edits, and a change must re-lint only the part it touched."""
from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import libcst as cst
import pytest

from evallint.config import Settings
from evallint.engine import lint_text
from evallint.fixer import verify_offered_fixes
from evallint.fastparse import parse_module
from evallint.incremental import IncrementalLinter, LintStats, group_parts, resplit, split_chunks
from evallint.registry import load_rules
from evallint.spans import PrintMemo, node_spans
from evallint.splice import splice

pytest.importorskip("pygls")

from test_lsp import LspClient, WAIT_S  # noqa: E402  (the real-server client)

REPO = Path(__file__).resolve().parents[1]
BUGGY_FIXTURES = sorted(p for p in (REPO / "fixtures" / "buggy").glob("*.py") if not p.name.endswith(".fixed.py"))
CLEAN_FIXTURES = sorted((REPO / "fixtures" / "clean").glob("*.py"))


def random_edit(text: str, rng: random.Random) -> str:
    """One edit a person might make: `=` <-> `+=` on an accumulator, a blank or
    comment line, a deleted or duplicated line, a renamed name, a new statement."""
    lines = text.split("\n")
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        return text + "x = 1\n"
    i = rng.choice(filled)
    line = lines[i]
    kind = rng.randrange(7)
    indent = re.match(r"[ \t]*", line).group(0)
    if kind == 0 and re.match(r"\s+\w+ = ", line):
        lines[i] = re.sub(r"^(\s+\w+) = ", r"\1 += ", line, count=1)
    elif kind == 0 and re.match(r"\s+\w+ \+= ", line):
        lines[i] = re.sub(r"^(\s+\w+) \+= ", r"\1 = ", line, count=1)
    elif kind == 1:
        lines.insert(i, "")
    elif kind == 2:
        lines.insert(i, indent + "# checked by hand")
    elif kind == 3:
        del lines[i]
    elif kind == 4:
        lines.insert(i, line)
    elif kind == 5:
        words = re.findall(r"\b[a-z_]\w*\b", line)
        if words:
            word = rng.choice(words)
            lines[i] = re.sub(rf"\b{word}\b", word + "_b", line, count=1)
    else:
        lines.append(rng.choice(["# the end", "print(model)", "total = 0",
                                 "def probe(model, loader):\n    model.eval()\n    return model"]))
    return "\n".join(lines)


def _as_json(diagnostics) -> list[str]:
    return sorted(json.dumps(d.to_json(), sort_keys=True) for d in diagnostics)


# --- in process: the incremental linter against the engine, from scratch ---------------

@pytest.mark.parametrize("path", BUGGY_FIXTURES[::2] + CLEAN_FIXTURES[::4], ids=lambda p: p.name)
def test_incremental_lint_equals_a_fresh_lint_after_every_edit(path):
    rules = load_rules()
    settings = Settings(enabled=frozenset(rules.codes()) | frozenset(rules.engine_codes()), root=path.parent)
    text = path.read_text(encoding="utf-8")
    linter = IncrementalLinter(str(path), LintStats())
    rng = random.Random(path.name)
    for step in range(5):
        if step:
            text = random_edit(text, rng)
        fresh = lint_text(text, str(path), settings, rules)
        unverified = _as_json(fresh.diagnostics)
        if fresh.source is not None:
            verify_offered_fixes(fresh.source, fresh, settings, rules)
        linted = linter.lint(text, settings, rules, full=lambda: lint_text(text, str(path), settings, rules))
        assert _as_json(linted.result.diagnostics) == unverified, f"step {step}:\n{text}"
        assert _as_json(linted.verify()) == _as_json(fresh.diagnostics), f"step {step} (verified fixes):\n{text}"


@pytest.mark.parametrize("path", BUGGY_FIXTURES[1::3], ids=lambda p: p.name)
def test_a_spliced_tree_is_the_tree_of_a_fresh_parse(path):
    text = path.read_text(encoding="utf-8")
    chunks, module = split_chunks(text), parse_module(text)
    rng = random.Random(path.name)
    spliced_any = False
    for step in range(10):
        new = random_edit(text, rng)
        new_chunks = (resplit(text, chunks, new) if chunks else None) or split_chunks(new)
        try:
            fresh = parse_module(new)
        except Exception:  # the edit broke the file: nothing to splice
            fresh = None
        if new_chunks is None or fresh is None:
            text, chunks, module = new, new_chunks, fresh
            continue
        spliced = splice(module, [c.text for c in chunks], [c.text for c in new_chunks]) \
            if module is not None and chunks is not None else None
        if spliced is not None:
            spliced_any = True
            assert spliced.code == new and spliced.deep_equals(fresh), f"step {step}:\n{new}"
        text, chunks, module = new, new_chunks, fresh
    assert spliced_any or len(chunks or ()) < 3


def test_a_long_script_lints_as_a_fresh_check_after_the_edits_of_a_session():
    # The benchmark's 1,000-line script (one big part, fixes in every copy of the
    # block): the edits reuse most statements, their printed spans and fixes.
    sys.path.insert(0, str(REPO))
    from benchmarks.perf import _lsp_script

    rules = load_rules()
    settings = Settings(enabled=frozenset(rules.codes()) | frozenset(rules.engine_codes()), root=REPO)
    text = _lsp_script(400)
    linter, stats = IncrementalLinter("train.py", LintStats()), None
    rng = random.Random("long")
    bug = "        correct = (predicted == labels)"
    for step in range(8):
        if step in (1, 3):
            text = text.replace(bug, bug.replace("correct =", "correct +="), 1)
        elif step == 2:
            text += "\n# edit\n"
        elif step:
            text = random_edit(text, rng)
        fresh = lint_text(text, "train.py", settings, rules)
        linted = linter.lint(text, settings, rules, full=lambda: lint_text(text, "train.py", settings, rules))
        assert _as_json(linted.result.diagnostics) == _as_json(fresh.diagnostics), f"step {step}:\n{text}"
        assert any(d.fix is not None for d in fresh.diagnostics)
    stats = linter.stats
    assert stats.parts_spliced >= 3 and stats.parts_reused >= 3
    # What the print memo keeps names only statements of the trees kept for the next version.
    live = {id(s) for part in linter._parts.values() if part.module is not None for s in part.module.body}
    assert all(id(t) in live for _, tops, _ in linter._printed._renders.values() for t in tops)
    assert linter._printed._renders and set(linter._printed._printed) <= live


@pytest.mark.parametrize("path", BUGGY_FIXTURES[::3], ids=lambda p: p.name)
def test_spans_kept_across_versions_are_the_spans_of_a_fresh_printing(path):
    # PrintMemo prints only the statements it has not printed; the spans of every
    # statement and expression must still be those of printing the whole module.
    text = path.read_text(encoding="utf-8")
    chunks, module = split_chunks(text), parse_module(text)
    memo = PrintMemo()
    rng = random.Random(path.name)
    for step in range(6):
        if module is not None:
            nodes = [n for n in _all_nodes(module) if isinstance(n, (cst.BaseStatement, cst.BaseExpression))]
            nodes = rng.sample(nodes, min(len(nodes), 40))
            assert node_spans(module, nodes, memo) == node_spans(module, nodes), f"step {step}:\n{text}"
        new = random_edit(text, rng)
        new_chunks = (resplit(text, chunks, new) if chunks else None) or split_chunks(new)
        spliced = splice(module, [c.text for c in chunks], [c.text for c in new_chunks]) \
            if module is not None and chunks and new_chunks else None
        if spliced is None:
            try:
                spliced = parse_module(new)
            except Exception:  # the edit broke the file
                spliced = None
        text, chunks, module = new, new_chunks, spliced


def _all_nodes(node: cst.CSTNode) -> list:
    out = [node]
    for child in node.children:
        out += _all_nodes(child)
    return out


def test_chunks_tie_by_shared_names_and_imports_tie_nothing():
    text = textwrap.dedent("""\
        import torch
        from torch import nn

        loader = make_loader()


        def evaluate(model):
            for x, y in loader:
                model(x)


        class Net(nn.Module):
            def forward(self, inputs):
                return torch.relu(inputs)


        def train(net, batches):
            for inputs_b in batches:
                net.forward(inputs_b)
        """)
    chunks = split_chunks(text)
    assert [c.first for c in chunks] == [1, 2, 3, 5, 10, 15]
    assert [c.hub for c in chunks] == [True, True, False, False, False, False]
    # `loader` ties evaluate to its binding; `forward` ties train to Net; torch/nn tie nothing.
    assert sorted(group_parts(chunks)) == [[2, 3], [4, 5]]


# --- a real server session -------------------------------------------------------------

@pytest.fixture
def server(tmp_path):
    c = LspClient(tmp_path)
    c.initialize(tmp_path)
    yield c
    c.close()


def _fresh_check(path: Path, cwd: Path) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "evallint", "check", "--format", "lsp", str(path)],
                         cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 1), out.stderr[-2000:]
    batch = json.loads(out.stdout)
    return batch[0]["diagnostics"] if batch else []


def _change(client: LspClient, uri: str, text: str, version: int) -> None:
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                             "contentChanges": [{"text": text}]})


@pytest.mark.parametrize("name", ["legacy_mnist_eval_slips", "stl10_eval_pipeline_slips", "tabular_mlp_accumulator"])
def test_published_diagnostics_equal_a_fresh_check_after_random_edits(server, tmp_path, name):
    source = REPO / "fixtures" / "buggy" / f"{name}.py"
    text = source.read_text(encoding="utf-8")
    path = tmp_path / source.name
    path.write_text(text, encoding="utf-8")
    uri = server.open(path, text)
    published = server.diagnostics(uri, version=1)["diagnostics"]
    rng = random.Random(name)
    for version in range(1, 6):
        if version > 1:
            text = random_edit(text, rng)
            path.write_text(text, encoding="utf-8")
            _change(server, uri, text, version)
            published = server.diagnostics(uri, version=version)["diagnostics"]
        expected = _fresh_check(path, tmp_path)
        if published != expected:
            # Fixes are verified once the document rests: the verified set comes in a
            # second publish of the same version when verification withdrew a fix.
            strip = [{**d, "data": {**d["data"], "fix": None}} for d in published]
            assert strip == [{**d, "data": {**d["data"], "fix": None}} for d in expected], text
            published = server.diagnostics(uri, version=version)["diagnostics"]
        assert published == expected, text


TWO_PARTS = textwrap.dedent("""\
    import torch


    def evaluate(model, test_loader):
        correct = 0
        total = 0
        with torch.no_grad():
            for images, labels in test_loader:
                outputs = model(images)
                _, predicted = torch.max(outputs, 1)
                total += labels.size(0)
                correct = (predicted == labels).sum().item()
        return 100 * correct / total


    def log_rate(opt, writer, step):
        writer.add_scalar("lr", opt.param_groups[0]["lr"], step)
    """)


def _stats(client: LspClient) -> dict:
    return client.call("evallint/debugStats", None)


def _settled(client: LspClient, quiet_s: float = 1.0) -> dict:
    """The stats once the server has done all it had scheduled (the callers' background
    scan and its re-lint, fix verification after the rest period): two reads `quiet_s`
    apart that agree. A loaded machine only makes this wait longer."""
    deadline = time.monotonic() + WAIT_S
    last = _stats(client)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = _stats(client)
        if {k: v for k, v in now.items() if k != "last"} == {k: v for k, v in last.items() if k != "last"}:
            return now
        last = now
    return last


def test_a_change_relints_only_the_part_it_touched(server, tmp_path):
    uri = server.open(tmp_path / "eval.py", TWO_PARTS)
    first = server.diagnostics(uri, version=1)["diagnostics"]
    assert [d["code"] for d in first if d["code"] == "EL101"] == ["EL101"]
    before = _stats(server)
    assert before["last"]["mode"] == "incremental" and before["last"]["parts"] == 2

    # Edit the helper: the evaluation function's part is reused, not linted again.
    edited = TWO_PARTS.replace('"lr", opt', '"learning_rate", opt')
    _change(server, uri, edited, 2)
    assert server.diagnostics(uri, version=2)["diagnostics"] == first
    after = _stats(server)
    assert after["parts_linted"] - before["parts_linted"] == 1
    assert after["parts_reused"] - before["parts_reused"] == 1
    assert after["last"]["lines_linted"] == 4   # the helper: its two lines and the two blank lines above
    # No statement with a block precedes the helper in its part: it sets the part's
    # indentation itself, detects the same one alone, and is spliced.
    assert after["last"]["parts_spliced"] == 1

    # Fix the bug in the evaluation function: only that part is linted, EL101 is gone.
    fixed = edited.replace("correct = (predicted", "correct += (predicted")
    _change(server, uri, fixed, 3)
    assert not [d for d in server.diagnostics(uri, version=3)["diagnostics"] if d["code"] == "EL101"]
    again = _stats(server)
    assert again["parts_linted"] - after["parts_linted"] == 1
    assert again["parts_reused"] - after["parts_reused"] == 1

    # A name that now ties the two functions puts them in one part.
    tied = fixed.replace("def log_rate(opt, writer, step):", "def log_rate(opt, writer, step, model=None):")
    _change(server, uri, tied, 4)
    server.diagnostics(uri, version=4)
    assert _stats(server)["last"]["parts"] == 1


def test_fixes_are_verified_once_per_part_and_before_a_code_action(server, tmp_path):
    uri = server.open(tmp_path / "eval.py", TWO_PARTS)
    diag = next(d for d in server.diagnostics(uri, version=1)["diagnostics"] if d["code"] == "EL101")
    params = {"textDocument": {"uri": uri}, "range": diag["range"],
              "context": {"diagnostics": [diag], "only": ["quickfix"]}}
    actions = server.call("textDocument/codeAction", params)
    assert [a["kind"] for a in actions] == ["quickfix"]
    verified = _stats(server)["parts_verified"]
    assert verified == 1   # the part with the fix; the helper's part has none to verify
    server.call("textDocument/codeAction", params)
    assert _stats(server)["parts_verified"] == verified   # kept for the version


def test_an_unchanged_save_reuses_every_part(server, tmp_path):
    path = tmp_path / "eval.py"
    path.write_text(TWO_PARTS, encoding="utf-8")
    uri = server.open(path, TWO_PARTS)
    server.diagnostics(uri, version=1)
    before = _settled(server)
    server.drain(0.2)  # publishes of the background re-lints: the next one is the save's
    server.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    server.diagnostics(uri, version=1)
    after = _settled(server)
    assert after["parts_linted"] == before["parts_linted"]
    # Both parts again (a background re-lint, when the callers' scan ends, reuses them too).
    assert after["parts_reused"] - before["parts_reused"] >= 2
    assert after["full_lints"] == before["full_lints"]


def test_a_syntax_error_falls_back_to_the_whole_document(server, tmp_path):
    uri = server.open(tmp_path / "eval.py", TWO_PARTS)
    server.diagnostics(uri, version=1)
    broken = TWO_PARTS.replace("def log_rate(opt, writer, step):", "def log_rate(opt, writer, step:")
    _change(server, uri, broken, 2)
    codes = [d["code"] for d in server.diagnostics(uri, version=2)["diagnostics"]]
    assert codes == ["EL000"]
    assert _stats(server)["last"]["mode"] == "full"
    _change(server, uri, TWO_PARTS, 3)
    assert "EL101" in [d["code"] for d in server.diagnostics(uri, version=3, timeout=WAIT_S)["diagnostics"]]
    assert _stats(server)["last"]["mode"] == "incremental"


def test_lsp_benchmark_prints_both_edits_with_the_ratio_to_the_parse(capsys):
    # The benchmark's shape, on a short script (a smoke test: never a timed assertion).
    sys.path.insert(0, str(REPO))
    from benchmarks.perf import bench_lsp

    bench_lsp(1, lines=120)
    out = capsys.readouterr().out
    ratios = re.findall(r"^  (.+?): didChange -> publishDiagnostics: median \d+ ms .*\((\d+\.\d\d)x\)$", out, re.M)
    assert [label for label, _ in ratios] == ["append a comment at the end",
                                              "'=' -> '+=' in a function in the middle, and back"], out
    assert all(float(r) > 0 for _, r in ratios)
    assert out.count('"mode": "incremental"') == 2, out   # the server's breakdown of one change


def test_a_lint_never_waits_for_the_workspace_scan(tmp_path, monkeypatch):
    # The callers' scan of the workspace runs on its own thread: held up here until
    # the lint has returned, the helper is judged on its own file meanwhile.
    from evallint.lsp import callers
    from evallint.lsp.linting import DocumentLinter

    release, started = threading.Event(), threading.Event()
    real = callers._importers

    def held_up(settings, module):
        started.set()
        assert release.wait(WAIT_S)
        return real(settings, module)

    monkeypatch.setattr(callers, "_importers", held_up)
    utils = ("import torch\n\ndef evaluate(model, loader):\n    hits = 0\n    for x, y in loader:\n"
             "        hits += (model(x).argmax(1) == y).sum().item()\n    return hits\n")
    (tmp_path / "utils.py").write_text(utils, encoding="utf-8")
    (tmp_path / "train.py").write_text("from utils import evaluate\n", encoding="utf-8")
    linter = DocumentLinter(tmp_path)
    ready = threading.Event()
    linter.on_callers_ready = lambda module: ready.set()
    try:
        doc = linter.lint((tmp_path / "utils.py").as_uri(), 1, utils, str(tmp_path / "utils.py"))
        assert started.wait(WAIT_S)            # the scan was asked for, and is still held up
        assert not ready.is_set()
        assert sorted(d.code for d in doc.diagnostics) == ["EL201", "EL202"]   # judged alone
    finally:
        release.set()
    assert ready.wait(WAIT_S)
