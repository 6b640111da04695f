"""`evallint lsp`: evallint's findings and fixes in any LSP editor, over stdio."""
from __future__ import annotations

import importlib.util


def missing_dependencies() -> list[str]:
    """The optional packages (the `lsp` extra) the server needs and cannot import."""
    missing = []
    for name in ("pygls", "lsprotocol"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or blocked install
            found = False
        if not found:
            missing.append(name)
    return missing


def serve() -> None:
    """Run the language server on stdin/stdout until the client says exit."""
    # pygls is an optional dependency (the `lsp` extra): say so instead of a traceback.
    missing = missing_dependencies()
    if missing:
        raise SystemExit(f"evallint lsp needs {' and '.join(missing)}: pip install 'evallint[lsp]'")
    from .server import serve as _serve

    _serve()
