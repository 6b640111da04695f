"""Column conversion between evallint (code points) and LSP position encodings.

evallint counts columns in characters (code points). LSP counts them in code units of
the negotiated position encoding: UTF-16 by default (the only one every client must
support), UTF-8 or UTF-32 when both sides agree. A Chinese comment or an emoji before
a finding moves the LSP column; these two functions are the only place that knows how.
"""
from __future__ import annotations

UTF8 = "utf-8"
UTF16 = "utf-16"
UTF32 = "utf-32"
ENCODINGS = (UTF16, UTF8, UTF32)


def _name(encoding: object) -> str:
    # lsprotocol's PositionEncodingKind is a str enum; accept it and plain strings.
    value = getattr(encoding, "value", encoding)
    return value if value in ENCODINGS else UTF16


def _units(char: str, encoding: str) -> int:
    cp = ord(char)
    if encoding == UTF16:
        return 2 if cp > 0xFFFF else 1
    if encoding == UTF8:
        return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    return 1


def char_to_unit(text: str, col0: int, encoding: object = UTF16) -> int:
    """Code-unit offset of the 0-based character column `col0` in the line `text`.

    Columns past the end of the line count the missing characters as one unit each,
    so a position just after the last character stays just after it.
    """
    enc = _name(encoding)
    col0 = max(col0, 0)
    head = text[:col0]
    if enc == UTF32:
        units = len(head)
    elif enc == UTF16:
        # surrogatepass: a lone surrogate must not crash the server.
        units = len(head.encode("utf-16-le", "surrogatepass")) // 2
    else:
        units = len(head.encode("utf-8", "surrogatepass"))
    return units + max(col0 - len(text), 0)


def unit_to_char(text: str, unit: int, encoding: object = UTF16) -> int:
    """0-based character column of the code-unit offset `unit` in the line `text`.

    An offset inside a character (half a surrogate pair, a byte inside a UTF-8
    sequence) resolves to that character's start; offsets past the end clamp to the
    line's length, as LSP asks.
    """
    enc = _name(encoding)
    if unit <= 0:
        return 0
    if enc == UTF32:
        return min(unit, len(text))
    seen = 0
    for index, char in enumerate(text):
        seen += _units(char, enc)
        if seen > unit:
            return index
        if seen == unit:
            return index + 1
    return len(text)


def choose_encoding(offered: object) -> str:
    """The position encoding the server uses, given the client's `general.positionEncodings`.

    UTF-16 whenever the client offers it or says nothing (it is LSP's mandatory default
    and what `--format lsp` writes, so the server and the CLI agree); otherwise the
    first encoding the client offers that we support; UTF-16 again if none is.
    """
    names = [getattr(e, "value", e) for e in (offered or [])]
    if not names or UTF16 in names:
        return UTF16
    for name in names:
        if name in ENCODINGS:
            return name
    return UTF16
