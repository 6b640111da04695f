"""A minimal language-server client over stdio, for the benchmarks."""
from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path


class LspClient:
    def __init__(self, command: list[str], cwd: str) -> None:
        self.command, self.cwd = command, cwd
        self.inbox: "queue.Queue[dict | None]" = queue.Queue()
        self._id = 0

    def __enter__(self) -> "LspClient":
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()
        self._id += 1
        self._send({"id": self._id, "method": "initialize",
                    "params": {"processId": None, "rootUri": Path(self.cwd).as_uri(), "capabilities": {}}})
        self._wait(lambda m: m.get("id") == self._id and "method" not in m)
        self._send({"method": "initialized", "params": {}})
        return self

    def __exit__(self, *exc) -> None:
        self._id += 1
        try:
            self._send({"id": self._id, "method": "shutdown", "params": None})
            self._wait(lambda m: m.get("id") == self._id and "method" not in m, timeout=10)
            self._send({"method": "exit", "params": None})
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a benchmark must not hang on a server that will not stop
            self.proc.kill()

    def _read(self) -> None:
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
            self.inbox.put(json.loads(out.read(length).decode("utf-8")))

    def _send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def _wait(self, match, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.inbox.get(timeout=max(0.001, deadline - time.monotonic()))
            if msg is None:
                raise RuntimeError("the language server closed its output")
            if match(msg):
                return msg

    def request(self, method: str, params) -> dict:
        self._id += 1
        ident = self._id
        self._send({"id": ident, "method": method, "params": params})
        return self._wait(lambda m: m.get("id") == ident and "method" not in m).get("result") or {}

    def open(self, uri: str, text: str) -> None:
        self._send({"method": "textDocument/didOpen",
                    "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}})

    def change(self, uri: str, text: str, version: int) -> None:
        self._send({"method": "textDocument/didChange",
                    "params": {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}})

    def wait_diagnostics(self, uri: str, version: int | None = None) -> dict:
        """The next diagnostics of the document (of that version: a server may publish
        a version again, when background work changes what it says)."""
        return self._wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                          and m["params"]["uri"] == uri
                          and (version is None or m["params"].get("version") == version))["params"]
