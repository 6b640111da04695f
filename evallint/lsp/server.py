"""`evallint lsp`: the language server.

Diagnostics are published on open, change and save at once: an idle document is
linted the moment it changes (no quiet period to wait out). A change that arrives
while its document is being linted is not queued: when that lint ends its result is
dropped and the newest text is linted next, so the newest version always wins and a
burst of keystrokes costs at most one lint in flight plus one. Linting runs in a
worker thread so the server keeps answering while a large file is checked.

A change re-lints only the parts of the document it can affect (evallint.incremental).
The fixes on offer are verified (applied, re-checked, withdrawn unless they hold) off
the diagnostics path: once the document rests, and before any code action.
"""
from __future__ import annotations

import asyncio
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Optional

from lsprotocol import types
from pygls.exceptions import FeatureRequestError, JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from .. import __version__
from ..config import relative_posix
from ..diagnostic import Diagnostic
from .actions import FIX_ALL, QUICKFIX, fix_all, quick_fixes, wants
from .convert import DocumentPositions, to_lsp_diagnostic
from .linting import DocumentLinter, LintedDocument
from .encoding import UTF16
from .protocol import AnsweredError, EvallintProtocol

DEBUG_STATS = "evallint/debugStats"
VERIFY_DELAY_S = 0.3   # fixes are verified once the document rests this long


class EvallintServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("evallint", __version__, protocol_cls=EvallintProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.linter = DocumentLinter()
        self.linter.project.buffer_text = self.open_buffer_text
        self.linter.on_callers_ready = self.callers_ready
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._pending: dict[str, asyncio.Task] = {}   # uri -> its lint in flight
        self._stale: set[str] = set()   # documents changed while their lint was in flight
        # uri -> the last published lint and its LSP diagnostics, for code actions.
        self._published: dict[str, tuple[LintedDocument, list[tuple[Diagnostic, dict]]]] = {}
        self._shown_config_errors: set[str] = set()

    def callers_ready(self, module: str) -> None:
        """The callers of a module's helpers are known (background thread): lint the
        open documents of that module again."""
        loop = self._loop
        if loop is None:
            return
        def relint() -> None:
            for uri in list(self.workspace.text_documents):
                path = to_fs_path(uri)
                if path and relative_posix(path, self.linter.settings_for(path).root) == module:
                    self.schedule(uri)
        loop.call_soon_threadsafe(relint)

    def file_changed(self, uri: str) -> None:
        path = to_fs_path(uri)
        if path:
            self.linter.project.callers.invalidate(relative_posix(path, self.linter.settings_for(path).root))

    def open_buffer_text(self, path: str) -> Optional[str]:
        """The text an editor holds for a file, None when it is not open."""
        try:
            doc = self.workspace.text_documents.get(Path(path).resolve().as_uri())
        except (ValueError, OSError):
            return None
        return doc.source if doc is not None and not path.endswith(".ipynb") else None

    # Position encoding ------------------------------------------------------------
    @property
    def encoding(self) -> str:
        enc = self.workspace.position_encoding
        return getattr(enc, "value", enc) or UTF16

    # Linting ------------------------------------------------------------------------
    def schedule(self, uri: str) -> None:
        """Lint now, or, when a lint of this document is in flight, right after it."""
        self._loop = asyncio.get_running_loop()
        running = self._pending.get(uri)
        if running is not None and not running.done():
            self._stale.add(uri)
            return
        self._pending[uri] = self._loop.create_task(self._lint_and_publish(uri))

    def cancel(self, uri: str) -> None:
        self._stale.discard(uri)
        task = self._pending.pop(uri, None)
        if task is not None:
            task.cancel()

    async def _lint_and_publish(self, uri: str) -> None:
        try:
            while True:
                self._stale.discard(uri)
                try:
                    if not await self._lint_once(uri):
                        return
                except asyncio.CancelledError:
                    raise
                except Exception:  # an engine bug must cost one lint, never the server
                    self.log_error(f"evallint failed on {uri}:\n{traceback.format_exc()}")
                if uri not in self._stale:
                    return
                # Changed while it was linted: lint the newest text now (latest wins).
        finally:
            if self._pending.get(uri) is asyncio.current_task():
                del self._pending[uri]

    async def _lint_once(self, uri: str) -> bool:
        """Lint the document as it is now and publish unless it changed meanwhile;
        False when there is nothing to lint (closed, not Python)."""
        doc = self.workspace.text_documents.get(uri)
        if doc is None or not is_python(uri, doc.language_id):
            return False
        linted = await self.lint(uri, doc.version, doc.source)
        current = self.workspace.text_documents.get(uri)
        if current is None:
            return False  # closed meanwhile
        if uri in self._stale or current.version != linted.version:
            return True  # superseded: never publish an old version
        self.publish(linted)
        for error in linted.errors:
            self.log_error(f"evallint: {error}")
        if not linted.fixes_verified:
            self._loop.call_later(VERIFY_DELAY_S, self._verify_later, linted)
        return True

    def _verify_later(self, linted: LintedDocument) -> None:
        """When the document rests, verify the offered fixes (republishing if one is
        withdrawn); a newer version makes it moot."""
        if not self._is_current(linted) or linted.uri in self._pending:
            return

        async def run() -> None:
            try:
                await self.verified(linted)
            except Exception:  # an engine bug must cost one verification, never the server
                self.log_error(f"evallint failed to verify fixes on {linted.uri}:\n{traceback.format_exc()}")
        self._loop.create_task(run())

    def _is_current(self, linted: LintedDocument) -> bool:
        doc = self.workspace.text_documents.get(linted.uri)
        published = self._published.get(linted.uri)
        return (doc is not None and doc.version == linted.version and linted.uri not in self._stale
                and published is not None and published[0].version == linted.version)

    async def verified(self, linted: LintedDocument, pairs: Optional[list] = None
                       ) -> tuple[LintedDocument, list[tuple[Diagnostic, dict]]]:
        """The lint with only the fixes that hold; what code actions offer. Kept as the
        published lint when it is still current, and republished if a fix went."""
        if linted.fixes_verified:
            return linted, pairs if pairs is not None else self.to_lsp(linted)
        checked = await asyncio.to_thread(self.linter.verify, linted)
        checked_pairs = self.to_lsp(checked)
        published = self._published.get(checked.uri)
        if published is not None and published[0] is linted and self._is_current(linted):
            if [lsp for _, lsp in checked_pairs] != [lsp for _, lsp in published[1]]:
                self.publish(checked)
            else:
                self._published[checked.uri] = (checked, checked_pairs)
        return checked, checked_pairs

    async def lint(self, uri: str, version: Optional[int], text: str) -> LintedDocument:
        return await asyncio.to_thread(self.linter.lint, uri, version, text, to_fs_path(uri))

    async def current_lint(self, uri: str) -> tuple[LintedDocument, list[tuple[Diagnostic, dict]]]:
        """The lint of the document as the client holds it now (re-linted if stale)."""
        doc = self.workspace.get_text_document(uri)
        published = self._published.get(uri)
        if published is not None and published[0].version == doc.version and published[0].text == doc.source:
            return published
        linted = await self.lint(uri, doc.version, doc.source)
        return linted, self.to_lsp(linted)

    def to_lsp(self, linted: LintedDocument) -> list[tuple[Diagnostic, dict]]:
        positions = DocumentPositions(linted, self.encoding)
        return [(d, to_lsp_diagnostic(d, positions)) for d in linted.diagnostics]

    def publish(self, linted: LintedDocument) -> None:
        pairs = self.to_lsp(linted)
        self._published[linted.uri] = (linted, pairs)
        self.send_diagnostics(linted.uri, [lsp for _, lsp in pairs], linted.version)
        self.show_config_errors()

    def send_diagnostics(self, uri: str, diagnostics: list[dict], version: Optional[int] = None) -> None:
        params = {"uri": uri, "diagnostics": diagnostics}
        if version is not None:
            params["version"] = version
        self.text_document_publish_diagnostics(self.structure(params, types.PublishDiagnosticsParams))

    def relint_all(self) -> None:
        self.linter.forget_settings()
        self._shown_config_errors.clear()
        for uri in list(self.workspace.text_documents):
            self.schedule(uri)

    # Messages to the user -------------------------------------------------------------
    def show_config_errors(self) -> None:
        for folder, message in list(self.linter.config_errors.items()):
            if message not in self._shown_config_errors:
                self._shown_config_errors.add(message)
                self.window_show_message(types.ShowMessageParams(
                    type=types.MessageType.Error,
                    message=f"evallint: invalid configuration for {folder} (using defaults): {message}"))

    def log_error(self, message: str) -> None:
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Error, message=message))

    def report_server_error(self, error: Exception, source: Any) -> None:
        if isinstance(error, AnsweredError) or source is FeatureRequestError:
            return  # the client already has an error response
        if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
            # JSON-RPC: a body that is not JSON gets a Parse error with a null id.
            self.protocol._send_response(None, None, types.ResponseError(
                code=types.ErrorCodes.ParseError, message=f"Parse error: {error}"))
            return
        if isinstance(error, JsonRpcException):
            # A malformed notification: worth a log line, not a popup.
            self.log_error(f"evallint: ignored a malformed message: {error}")
            return
        super().report_server_error(error, source)

    # lsprotocol types <-> plain JSON ------------------------------------------------
    def structure(self, data: Any, cls: type) -> Any:
        return self.protocol._converter.structure(data, cls)

    def unstructure(self, obj: Any) -> Any:
        return self.protocol._converter.unstructure(obj)


def build_server() -> EvallintServer:
    server = EvallintServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: EvallintServer, params: types.InitializeParams) -> None:
        root = ls.workspace.root_path
        if root:
            ls.linter.fallback_folder = Path(root)

    @server.feature(types.INITIALIZED)
    def initialized(ls: EvallintServer, params: types.InitializedParams) -> None:
        if _client_can_watch(ls.client_capabilities):
            # Re-read [tool.evallint] when any pyproject.toml changes on disk.
            watcher = types.FileSystemWatcher(glob_pattern="**/pyproject.toml")
            ls.client_register_capability(types.RegistrationParams(registrations=[types.Registration(
                id="evallint-pyproject", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=types.DidChangeWatchedFilesRegistrationOptions(watchers=[watcher]))]))

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: EvallintServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: EvallintServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.file_changed(params.text_document.uri)
        ls.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    async def did_save(ls: EvallintServer, params: types.DidSaveTextDocumentParams) -> None:
        if params.text_document.uri.endswith("/pyproject.toml"):
            ls.relint_all()
        else:
            ls.file_changed(params.text_document.uri)
            ls.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: EvallintServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.cancel(uri)
        ls._published.pop(uri, None)
        ls.linter.forget(uri)
        ls.send_diagnostics(uri, [])

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    async def watched_files(ls: EvallintServer, params: types.DidChangeWatchedFilesParams) -> None:
        ls.linter.project.callers.invalidate()
        ls.relint_all()

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL]))
    async def code_action(ls: EvallintServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        doc = ls.workspace.text_documents.get(uri)
        if doc is None or not is_python(uri, doc.language_id):
            return []  # not open (or not ours): nothing to fix
        only = [getattr(k, "value", k) for k in params.context.only] if params.context.only else None
        linted, pairs = await ls.verified(*await ls.current_lint(uri))
        positions = DocumentPositions(linted, ls.encoding)
        actions: list[dict] = []
        if wants(QUICKFIX, only):
            client_diags = [ls.unstructure(d) for d in params.context.diagnostics]
            actions += quick_fixes(linted, pairs, ls.unstructure(params.range), client_diags, positions)
        if wants(FIX_ALL, only):
            actions += await asyncio.to_thread(fix_all, linted, ls.linter.fix_all, positions)
        return [ls.structure(a, types.CodeAction) for a in actions]

    @server.feature(DEBUG_STATS)
    def debug_stats(ls: EvallintServer, params: Any) -> dict:
        """What the incremental linter did so far (parts linted and reused, the last
        lint's breakdown): for tests and benchmarks, not for editors."""
        return ls.linter.stats.as_dict()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: EvallintServer, params: Any) -> None:
        for uri in list(ls._pending):
            ls.cancel(uri)

    return server


def is_python(uri: str, language_id: Optional[str]) -> bool:
    """Python files, notebooks and untitled Python buffers; a client that sends every
    file must not get syntax errors for its Markdown."""
    path = uri.split("?", 1)[0].lower()
    return language_id == "python" or path.endswith((".py", ".pyi", ".pyw", ".ipynb"))


def _client_can_watch(caps: types.ClientCapabilities) -> bool:
    watched = caps.workspace.did_change_watched_files if caps.workspace else None
    return bool(watched and watched.dynamic_registration)


def serve() -> None:
    server = build_server()
    server.start_io()
    # pygls swallows the SystemExit of `exit`; LSP wants 1 when shutdown never came.
    sys.exit(0 if server.protocol._shutdown else 1)
