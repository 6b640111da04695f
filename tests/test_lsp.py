"""`evallint lsp` driven as an editor would: a real server process, real stdio,
hand-written JSON-RPC framing. Every wait is bounded, so a broken server fails a
test instead of hanging it."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

pytest.importorskip("pygls")

WAIT_S = 20.0  # generous: the first lint imports libcst and the rule pack

BUGGY = textwrap.dedent("""\
    import torch

    correct = 0
    total = 0
    with torch.no_grad():
        for images, labels in test_loader:
            outputs = model(images)
            _, predicted = torch.max(outputs, 1)
            total += labels.size(0)
            correct = (predicted == labels).sum().item()  # 计算准确率
    print(100 * correct / total)
    """)
FIXED = BUGGY.replace("correct = (predicted", "correct += (predicted")

# The same bug with non-BMP and CJK text *before* the flagged statement on its line:
# code points, UTF-16 units and UTF-8 bytes all give different columns there.
WIDE_PREFIX = 'note = "准确率😀"; '
WIDE = BUGGY.replace("        correct = (predicted", "        " + WIDE_PREFIX + "correct = (predicted")
WIDE_FIXED = WIDE.replace("correct = (predicted", "correct += (predicted")
BUG_LINE0 = 9  # 0-based line of `correct = ...`


# --- a minimal LSP client ---------------------------------------------------------

def _server_command() -> list[str]:
    try:
        from evallint.cli import main
        if "lsp" in getattr(main, "commands", {}):
            return [sys.executable, "-m", "evallint", "lsp"]
    except Exception:
        pass
    return [sys.executable, "-c", "from evallint.lsp import serve; serve()"]


class LspClient:
    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen(_server_command(), cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.inbox: "queue.Queue[Optional[dict]]" = queue.Queue()
        self.seen: list[dict] = []  # messages read but not yet claimed by a wait
        self.stderr: list[bytes] = []
        self._next_id = 0
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    # framing
    def _read_stdout(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    self.inbox.put(None)
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = out.read(length)
            self.inbox.put(json.loads(body.decode("utf-8")))

    def send_body(self, body: bytes) -> None:
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, message: dict) -> None:
        self.send_body(json.dumps({"jsonrpc": "2.0", **message}, ensure_ascii=False).encode("utf-8"))

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any) -> int:
        self._next_id += 1
        self.send({"id": self._next_id, "method": method, "params": params})
        return self._next_id

    # waiting
    def wait_for(self, match: Callable[[dict], bool], timeout: float = WAIT_S) -> dict:
        for i, msg in enumerate(self.seen):
            if match(msg):
                return self.seen.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching message within {timeout}s; unclaimed: {self.seen}\n"
                                     f"stderr: {b''.join(self.stderr)[-3000:].decode(errors='replace')}")
            try:
                msg = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if msg is None:
                raise AssertionError("server closed stdout; stderr: "
                                     + b"".join(self.stderr)[-3000:].decode(errors="replace"))
            if match(msg):
                return msg
            self.seen.append(msg)

    def response(self, msg_id: Any, timeout: float = WAIT_S) -> dict:
        return self.wait_for(lambda m: "method" not in m and m.get("id") == msg_id, timeout)

    def call(self, method: str, params: Any) -> Any:
        reply = self.response(self.request(method, params))
        assert "error" not in reply, reply
        return reply["result"]

    def diagnostics(self, uri: str, version: Optional[int] = None, timeout: float = WAIT_S) -> dict:
        return self.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                             and m["params"]["uri"] == uri
                             and (version is None or m["params"].get("version") == version), timeout)["params"]

    def drain(self, seconds: float) -> list[dict]:
        """Everything that arrives within `seconds` (for asserting what did NOT come)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                msg = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if msg is not None:
                self.seen.append(msg)
        out, self.seen = self.seen, []
        return out

    # lifecycle
    def initialize(self, root: Path, encodings: Optional[list[str]] = None) -> dict:
        caps: dict = {"textDocument": {"codeAction": {"codeActionLiteralSupport": {
            "codeActionKind": {"valueSet": ["quickfix", "source", "source.fixAll"]}}}}}
        if encodings is not None:
            caps["general"] = {"positionEncodings": encodings}
        result = self.call("initialize", {"processId": None, "rootUri": root.as_uri(),
                                          "capabilities": caps})
        self.notify("initialized", {})
        return result

    def open(self, path: Path, text: str, language: str = "python", version: int = 1) -> str:
        uri = path.as_uri()
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": language, "version": version, "text": text}})
        return uri

    def close(self) -> int:
        """shutdown + exit; the process must end by itself."""
        try:
            if self.proc.poll() is None:
                assert self.call("shutdown", None) is None
                self.notify("exit", None)
            return self.proc.wait(timeout=WAIT_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def client(tmp_path):
    c = LspClient(tmp_path)
    yield c
    if c.proc.poll() is None:
        c.proc.kill()
        c.proc.wait(timeout=5)


@pytest.fixture
def ready(client, tmp_path):
    client.initialize(tmp_path)
    return client


# --- helpers that model the client side of positions, independent of evallint ----

def units(text: str, encoding: str) -> int:
    if encoding == "utf-16":
        return len(text.encode("utf-16-le")) // 2
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    return len(text)


def offset_of(text: str, position: dict, encoding: str = "utf-16") -> int:
    lines = text.split("\n")
    line = lines[position["line"]]
    col, seen = 0, 0
    while col < len(line) and seen < position["character"]:
        seen += units(line[col], encoding)
        col += 1
    return sum(len(l) + 1 for l in lines[:position["line"]]) + col


def apply_edits(text: str, edits: list[dict], encoding: str = "utf-16") -> str:
    spans = sorted(((offset_of(text, e["range"]["start"], encoding), offset_of(text, e["range"]["end"], encoding),
                     e["newText"]) for e in edits), reverse=True)
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


def only_el101(params: dict) -> dict:
    found = [d for d in params["diagnostics"] if d["code"] == "EL101"]
    assert len(found) == 1, params["diagnostics"]
    return found[0]


# --- initialize and position encodings ------------------------------------------------

def test_initialize_advertises_capabilities(client, tmp_path):
    caps = client.initialize(tmp_path)["capabilities"]
    assert caps["positionEncoding"] == "utf-16"
    assert set(caps["codeActionProvider"]["codeActionKinds"]) == {"quickfix", "source.fixAll.evallint"}
    assert caps["textDocumentSync"]["openClose"] is True
    assert caps["textDocumentSync"]["change"] == 2  # incremental
    assert client.close() == 0


@pytest.mark.parametrize("offered, chosen", [
    (["utf-8", "utf-16"], "utf-16"),   # UTF-16 when offered at all: same columns as --format lsp
    (["utf-8"], "utf-8"),
    (["utf-32", "utf-8"], "utf-32"),   # otherwise the client's first choice we support
    (["latin-1"], "utf-16"),           # nothing we know: LSP's mandatory default
])
def test_position_encoding_negotiation(client, tmp_path, offered, chosen):
    assert client.initialize(tmp_path, offered)["capabilities"]["positionEncoding"] == chosen


# --- diagnostics ----------------------------------------------------------------------

def test_did_open_publishes_diagnostic_with_all_fields(ready, tmp_path):
    start = time.monotonic()
    uri = ready.open(tmp_path / "eval.py", BUGGY)
    params = ready.diagnostics(uri)
    latency = time.monotonic() - start
    print(f"didOpen -> publishDiagnostics: {latency * 1000:.0f} ms (first lint, cold imports)")
    assert params["version"] == 1
    diag = only_el101(params)
    assert diag["range"]["start"] == {"line": BUG_LINE0, "character": 8}
    assert diag["range"]["end"]["line"] == BUG_LINE0
    assert diag["severity"] == 1
    assert diag["source"] == "evallint"
    assert diag["codeDescription"]["href"].endswith("EL101")
    assert diag["message"]
    fix = diag["data"]["fix"]
    assert fix["applicability"] == "safe"
    assert apply_edits(BUGGY, fix["edits"]) == FIXED  # the fix in data is LSP edits too


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8", "utf-32"])
def test_columns_follow_negotiated_encoding(client, tmp_path, encoding):
    client.initialize(tmp_path, [encoding])
    uri = client.open(tmp_path / "wide.py", WIDE)
    diag = only_el101(client.diagnostics(uri))
    line = WIDE.split("\n")[BUG_LINE0]
    start_char = line.index("correct = (")
    assert diag["range"]["start"] == {"line": BUG_LINE0, "character": units(line[:start_char], encoding)}
    # 准确率 are 3 units in UTF-16 (9 bytes in UTF-8); 😀 is 2 units in UTF-16 (4 bytes).
    expected = {"utf-16": 8 + len(WIDE_PREFIX) + 1, "utf-8": 8 + len(WIDE_PREFIX.encode()),
                "utf-32": 8 + len(WIDE_PREFIX)}[encoding]
    assert diag["range"]["start"]["character"] == expected


def test_same_diagnostics_as_format_lsp(ready, tmp_path):
    # The server and `evallint check --format lsp` share one conversion.
    path = tmp_path / "wide.py"
    path.write_text(WIDE, encoding="utf-8")
    uri = ready.open(path, WIDE)
    served = ready.diagnostics(uri)["diagnostics"]
    out = subprocess.run([sys.executable, "-m", "evallint", "check", "--format", "lsp", str(path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    if out.returncode == 2 or not out.stdout.strip():
        pytest.skip(f"--format lsp not available yet: {out.stderr[-300:]}")
    batch = json.loads(out.stdout)
    assert [p["uri"] for p in batch] == [uri]
    assert batch[0]["diagnostics"] == served


def test_did_change_lints_at_once_and_newest_version_wins(ready, tmp_path):
    uri = ready.open(tmp_path / "eval.py", BUGGY)
    ready.diagnostics(uri, version=1)
    # Three quick edits; the last one fixes the bug (full-text changes are always allowed).
    for version, text in ((2, BUGGY + "\n"), (3, BUGGY + "\n\n"), (4, FIXED)):
        ready.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                "contentChanges": [{"text": text}]})
    final = ready.diagnostics(uri, version=4)
    assert "EL101" not in [d["code"] for d in final["diagnostics"]]
    # A lint of version 2 starts at once and may finish before version 3 is read, so
    # an early publish of 2 or 3 is allowed; an older version after a newer one, or
    # anything after version 4, is not (latest wins).
    early = [m for m in ready.seen
             if m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri]
    published = [m["params"]["version"] for m in early]
    assert published == sorted(published) and all(v < 4 for v in published), published
    ready.seen = [m for m in ready.seen if m not in early]  # drain() returns the unclaimed ones too
    later = [m for m in ready.drain(0.8) if m.get("method") == "textDocument/publishDiagnostics"]
    assert later == []


def test_incremental_change_in_utf16_units(ready, tmp_path):
    uri = ready.open(tmp_path / "eval.py", WIDE)
    ready.diagnostics(uri, version=1)
    line = WIDE.split("\n")[BUG_LINE0]
    col = units(line[:line.index("= (predicted")], "utf-16")
    # Replace "=" by "+=" with a range given in UTF-16 units, after the emoji.
    ready.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{
        "range": {"start": {"line": BUG_LINE0, "character": col}, "end": {"line": BUG_LINE0, "character": col + 1}},
        "text": "+="}]})
    assert "EL101" not in [d["code"] for d in ready.diagnostics(uri, version=2)["diagnostics"]]


def test_did_save_relints(ready, tmp_path):
    path = tmp_path / "eval.py"
    path.write_text(BUGGY, encoding="utf-8")
    uri = ready.open(path, BUGGY)
    ready.diagnostics(uri, version=1)
    ready.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    only_el101(ready.diagnostics(uri, version=1))


def test_did_close_clears_diagnostics(ready, tmp_path):
    uri = ready.open(tmp_path / "eval.py", BUGGY)
    ready.diagnostics(uri)
    ready.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert ready.diagnostics(uri)["diagnostics"] == []


def test_syntax_error_is_el000_not_a_crash(ready, tmp_path):
    uri = ready.open(tmp_path / "broken.py", "def f(:\n    return 1\n")
    codes = [d["code"] for d in ready.diagnostics(uri)["diagnostics"]]
    assert codes == ["EL000"]
    assert ready.proc.poll() is None


def test_workspace_config_is_read_from_the_documents_folder(ready, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.evallint]\nignore = ["EL101"]\n', encoding="utf-8")
    quiet = ready.open(project / "eval.py", BUGGY)
    loud = ready.open(tmp_path / "eval.py", BUGGY)
    assert "EL101" not in [d["code"] for d in ready.diagnostics(quiet)["diagnostics"]]
    only_el101(ready.diagnostics(loud))


def test_invalid_config_is_shown_once_and_defaults_apply(ready, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.evallint]\nno-such-key = 1\n', encoding="utf-8")
    uri = ready.open(project / "eval.py", "x = 1\n")
    ready.diagnostics(uri)
    shown = ready.wait_for(lambda m: m.get("method") == "window/showMessage")
    assert shown["params"]["type"] == 1 and "no-such-key" in shown["params"]["message"]
    # Linting still happens, with the default rule set.
    assert [d["code"] for d in ready.diagnostics(ready.open(project / "bad.py", "def f(:\n"))["diagnostics"]] == ["EL000"]
    assert not [m for m in ready.drain(0.5) if m.get("method") == "window/showMessage"]


def test_non_python_documents_are_left_alone(ready, tmp_path):
    ready.open(tmp_path / "README.md", "# Title\n\ndef f(:\n", language="markdown")
    assert not [m for m in ready.drain(1.0) if m.get("method") == "textDocument/publishDiagnostics"]


# --- code actions -----------------------------------------------------------------------

@pytest.mark.parametrize("text, fixed", [(BUGGY, FIXED), (WIDE, WIDE_FIXED)])
def test_quick_fix_edit_yields_fixed_code(ready, tmp_path, text, fixed):
    uri = ready.open(tmp_path / "eval.py", text)
    diag = only_el101(ready.diagnostics(uri))
    actions = ready.call("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diag["range"],
        "context": {"diagnostics": [diag], "only": ["quickfix"]}})
    assert len(actions) == 1
    action = actions[0]
    assert action["kind"] == "quickfix"
    assert action["isPreferred"] is True
    assert action["diagnostics"] == [diag]
    edits = action["edit"]["changes"][uri]
    assert apply_edits(text, edits) == fixed


def test_unsafe_fix_is_offered_but_not_preferred(ready, tmp_path):
    uri = ready.open(tmp_path / "eval.py", BUGGY)
    el201 = [d for d in ready.diagnostics(uri)["diagnostics"] if d["code"] == "EL201"]
    assert el201 and el201[0]["data"]["fix"]["applicability"] == "unsafe"
    actions = ready.call("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": el201[0]["range"],
        "context": {"diagnostics": el201, "only": ["quickfix"]}})
    assert len(actions) == 1
    assert actions[0]["isPreferred"] is False and actions[0]["title"].endswith("(unsafe)")
    # Fix all stays with safe fixes: the unsafe `model.eval()` insertion is not in it.
    fix_all = ready.call("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": el201[0]["range"],
        "context": {"diagnostics": [], "only": ["source.fixAll.evallint"]}})
    assert apply_edits(BUGGY, fix_all[0]["edit"]["changes"][uri]) == FIXED


def test_quick_fix_in_utf8_client(client, tmp_path):
    client.initialize(tmp_path, ["utf-8"])
    uri = client.open(tmp_path / "eval.py", WIDE)
    diag = only_el101(client.diagnostics(uri))
    actions = client.call("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diag["range"], "context": {"diagnostics": [diag]}})
    quick = [a for a in actions if a["kind"] == "quickfix"]
    assert apply_edits(WIDE, quick[0]["edit"]["changes"][uri], "utf-8") == WIDE_FIXED


def test_no_quick_fix_outside_the_finding(ready, tmp_path):
    uri = ready.open(tmp_path / "eval.py", BUGGY)
    ready.diagnostics(uri)
    actions = ready.call("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 3}},
        "context": {"diagnostics": [], "only": ["quickfix"]}})
    assert actions == []


def test_fix_all_source_action(ready, tmp_path):
    uri = ready.open(tmp_path / "eval.py", WIDE)
    ready.diagnostics(uri)
    actions = ready.call("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
        "context": {"diagnostics": [], "only": ["source.fixAll"]}})
    assert [a["kind"] for a in actions] == ["source.fixAll.evallint"]
    edits = actions[0]["edit"]["changes"][uri]
    assert len(edits) == 1 and edits[0]["range"]["start"] == {"line": 0, "character": 0}
    assert apply_edits(WIDE, edits) == WIDE_FIXED
    # On clean code there is nothing to offer.
    clean = ready.open(tmp_path / "clean.py", WIDE_FIXED)
    ready.diagnostics(clean)
    assert ready.call("textDocument/codeAction", {
        "textDocument": {"uri": clean}, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
        "context": {"diagnostics": [], "only": ["source.fixAll.evallint"]}}) == []


def test_code_action_on_a_document_edited_since_the_last_publish(ready, tmp_path):
    uri = ready.open(tmp_path / "eval.py", BUGGY)
    ready.diagnostics(uri, version=1)
    moved = "import os\n" + BUGGY
    ready.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                            "contentChanges": [{"text": moved}]})
    # Asked before the lint of version 2 was published: the server lints version 2 itself.
    line = {"start": {"line": BUG_LINE0 + 1, "character": 8}, "end": {"line": BUG_LINE0 + 1, "character": 8}}
    actions = ready.call("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": line,
                                                     "context": {"diagnostics": [], "only": ["quickfix"]}})
    assert apply_edits(moved, actions[0]["edit"]["changes"][uri]) == "import os\n" + FIXED


# --- notebooks ---------------------------------------------------------------------------

def _notebook(code: str) -> str:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# Evaluation 评估\n"]},
             {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": code.splitlines(keepends=True)}]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
                      indent=1, ensure_ascii=False) + "\n"


def test_notebook_document_is_linted_in_place(ready, tmp_path):
    text = _notebook(BUGGY)
    uri = ready.open(tmp_path / "eval.ipynb", text, language="json")
    diag = only_el101(ready.diagnostics(uri))
    assert diag["data"]["cell"] == 2
    # The range points into the JSON string holding the flagged line.
    json_line = text.split("\n")[diag["range"]["start"]["line"]]
    assert json_line[units_to_chars(json_line, diag["range"]["start"]["character"]):].startswith("correct = (")
    actions = ready.call("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diag["range"], "context": {"diagnostics": [diag]}})
    by_kind = {a["kind"]: a for a in actions}
    for kind in ("quickfix", "source.fixAll.evallint"):
        fixed = json.loads(apply_edits(text, by_kind[kind]["edit"]["changes"][uri]))
        assert "".join(fixed["cells"][1]["source"]) == FIXED
    # The quick fix edits the JSON lines of the flagged cell line, not the whole document.
    (edit,) = by_kind["quickfix"]["edit"]["changes"][uri]
    flagged = diag["range"]["start"]["line"]
    assert edit["range"]["start"] == {"line": flagged, "character": 0}
    assert edit["range"]["end"] == {"line": flagged + 1, "character": 0}
    assert edit["newText"].count("\n") == 1 and "correct += (" in edit["newText"]


def units_to_chars(line: str, unit: int) -> int:
    col, seen = 0, 0
    while seen < unit:
        seen += units(line[col], "utf-16")
        col += 1
    return col


def test_broken_notebook_is_el001_not_a_crash(ready, tmp_path):
    uri = ready.open(tmp_path / "broken.ipynb", '{"cells": [', language="json")
    assert [d["code"] for d in ready.diagnostics(uri)["diagnostics"]] == ["EL001"]
    assert ready.proc.poll() is None


# --- malformed input -------------------------------------------------------------------------

def test_malformed_requests_get_errors_and_the_server_survives(ready, tmp_path):
    unknown = ready.response(ready.request("evallint/noSuchMethod", {}))
    assert unknown["error"]["code"] == -32601

    bad_params = ready.response(ready.request("textDocument/codeAction", {"textDocument": 42}))
    assert bad_params["error"]["code"] == -32602
    assert "range" in bad_params["error"]["message"]  # says what is wrong

    ready.send_body(b"{this is not json")
    garbage = ready.wait_for(lambda m: "error" in m and m.get("id") is None)
    assert garbage["error"]["code"] == -32700

    ready.send_body(b"[1, 2, 3]")
    not_object = ready.wait_for(lambda m: "error" in m and m.get("id") is None)
    assert not_object["error"]["code"] == -32600

    # Bad notifications get no reply, and must not kill anything either.
    ready.notify("textDocument/didOpen", {"textDocument": {"uri": 7}})
    ready.notify("textDocument/didChange", {"textDocument": {"uri": "file:///nowhere.py", "version": 2},
                                            "contentChanges": [{"text": "x"}]})

    # Still alive and working.
    uri = ready.open(tmp_path / "eval.py", BUGGY)
    only_el101(ready.diagnostics(uri))
    assert ready.close() == 0


def test_exit_without_shutdown_ends_the_process(ready):
    ready.notify("exit", None)
    assert ready.proc.wait(timeout=WAIT_S) == 1  # LSP: exit code 1 when shutdown was not requested


def test_round_trip_latency_after_warm_up(ready, tmp_path):
    """Measured, not tuned: a warm didOpen -> publishDiagnostics round trip."""
    warm = ready.open(tmp_path / "warm.py", BUGGY)
    ready.diagnostics(warm)
    times = []
    for i in range(5):
        start = time.monotonic()
        uri = ready.open(tmp_path / f"eval{i}.py", BUGGY)
        only_el101(ready.diagnostics(uri))
        times.append(time.monotonic() - start)
    median = sorted(times)[len(times) // 2]
    print(f"warm didOpen -> publishDiagnostics: median {median * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")
    assert median < 2.0


def test_an_imported_model_class_is_resolved_from_disk_and_open_buffers(ready, tmp_path):
    """models.py (on disk, then open in the editor with unsaved changes) decides
    whether the loop in train.py needs `eval()`."""
    plain = ("import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
             "        super().__init__()\n        self.fc = nn.Linear(4, 2)\n\n"
             "    def forward(self, x):\n        return self.fc(x)\n")
    (tmp_path / "models.py").write_text(plain)
    train = ("import torch\nfrom models import Net\n\nclf = Net()\nwith torch.no_grad():\n"
             "    for x, y in test_loader:\n        out = clf(x)\n")
    uri = ready.open(tmp_path / "train.py", train)
    assert ready.diagnostics(uri, 1)["diagnostics"] == []
    ready.open(tmp_path / "models.py", plain.replace("nn.Linear(4, 2)", "nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 2))"))
    ready.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                            "contentChanges": [{"text": train + "\n"}]})
    found = ready.diagnostics(uri, 2)["diagnostics"]
    assert [d["code"] for d in found] == ["EL201"] and "has dropout" in found[0]["message"]


def test_a_helper_whose_callers_switch_to_eval_mode_is_cleared_in_the_background(ready, tmp_path):
    """utils.py alone would be reported; its caller in train.py (found by a background
    scan of the workspace) switches to eval mode under no_grad."""
    (tmp_path / "models.py").write_text(
        "import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.body = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 2))\n\n"
        "    def forward(self, x):\n        return self.body(x)\n")
    (tmp_path / "train.py").write_text(
        "import torch\nfrom models import Net\nfrom utils import evaluate\n\nmodel = Net()\nmodel.eval()\n"
        "with torch.no_grad():\n    score = evaluate(model, val_loader)\n")
    utils = ("import torch\n\ndef evaluate(model, loader):\n    hits = 0\n    for x, y in loader:\n"
             "        hits += (model(x).argmax(1) == y).sum().item()\n    return hits\n")
    (tmp_path / "utils.py").write_text(utils)
    uri = ready.open(tmp_path / "utils.py", utils)
    first = ready.diagnostics(uri)["diagnostics"]
    assert sorted(d["code"] for d in first) in ([], ["EL201", "EL202"])
    if first:
        assert ready.diagnostics(uri)["diagnostics"] == []
