"""pygls's LSP protocol, hardened: every malformed request gets an answer.

pygls deserializes inside `json.loads`, so a request whose params do not fit the
method's type raises before it is dispatched and the client never hears back (and
waits forever). Garbage bodies and non-object messages are only logged. JSON-RPC
asks for an error response in each case; this class sends it and keeps serving.
It also applies evallint's position-encoding preference (see encoding.choose_encoding).
"""
from __future__ import annotations

from typing import Any

from cattrs import transform_error
from cattrs.errors import ClassValidationError
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from .encoding import choose_encoding


class AnsweredError(Exception):
    """A malformed request that has already received its error response."""


class EvallintProtocol(LanguageServerProtocol):
    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if _is_request(data):
                error = exc.to_response_error()
                if isinstance(exc.__cause__, ClassValidationError):
                    # Say which fields are wrong, not just "Invalid Params".
                    error.message = f"{error.message}: {'; '.join(transform_error(exc.__cause__))}"
                self._send_response(data["id"], None, error)
                raise AnsweredError(error.message) from exc
            raise

    def handle_message(self, message: Any):
        # Objects without "jsonrpc" come back from structure_message as plain data.
        if not hasattr(message, "jsonrpc"):
            msg_id = message.get("id") if isinstance(message, dict) else None
            error = JsonRpcInvalidRequest("not a JSON-RPC 2.0 message").to_response_error()
            self._send_response(msg_id if _valid_id(msg_id) else None, None, error)
            return
        super().handle_message(message)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):
        general = params.capabilities.general
        if general is not None and general.position_encodings:
            # pygls takes the client's first supported encoding; put ours first.
            chosen = choose_encoding(general.position_encodings)
            general.position_encodings = [chosen] + [
                e for e in general.position_encodings if e != chosen]
        result = yield from super().lsp_initialize(params)
        return result


def _valid_id(msg_id: object) -> bool:
    return isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool)


def _is_request(data: object) -> bool:
    return isinstance(data, dict) and "method" in data and _valid_id(data.get("id"))

