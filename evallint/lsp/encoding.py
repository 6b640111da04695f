"""Which position encoding the server speaks.

LSP counts columns in code units of an encoding both sides agree on at initialize.
The conversions themselves live in evallint.report.lsp, shared with `--format lsp`.
"""
from __future__ import annotations

UTF8 = "utf-8"
UTF16 = "utf-16"
UTF32 = "utf-32"
SUPPORTED = (UTF16, UTF8, UTF32)


def choose_encoding(offered: object) -> str:
    """The encoding to use, given the client's `general.positionEncodings`.

    UTF-16 whenever the client offers it or says nothing (it is LSP's mandatory default
    and what `--format lsp` writes, so the server and the CLI agree); otherwise the
    first encoding the client offers that we support; UTF-16 again if none is.
    """
    names = [getattr(e, "value", e) for e in (offered or [])]
    if not names or UTF16 in names:
        return UTF16
    for name in names:
        if name in SUPPORTED:
            return name
    return UTF16
