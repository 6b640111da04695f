"""`evallint lsp`: evallint's findings and fixes in any LSP editor, over stdio."""
from __future__ import annotations

import importlib.util


def serve() -> None:
    """Run the language server on stdin/stdout until the client says exit."""
    # pygls is an optional dependency (the `lsp` extra): say so instead of a traceback.
    missing = [m for m in ("pygls", "lsprotocol") if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"evallint lsp needs {' and '.join(missing)}: pip install 'evallint[lsp]'")
    from .server import serve as _serve

    _serve()
