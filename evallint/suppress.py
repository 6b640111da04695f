"""In-source suppressions: `# noqa`, `# noqa: EL101`, `# evallint: ignore[name-or-code]`,
and `# evallint: skip-file`."""
from __future__ import annotations

import re

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+\d+(?:\s*,\s*[A-Za-z]+\d+)*))?", re.IGNORECASE)
_IGNORE = re.compile(r"#\s*evallint:\s*ignore(?:\[(?P<items>[^\]]*)\])?", re.IGNORECASE)
SKIP_FILE = re.compile(r"^\s*#\s*evallint:\s*skip-file\b", re.IGNORECASE | re.MULTILINE)


def is_suppressed(line_texts: list[str], code: str, name: str) -> bool:
    """Whether any of the given lines carries a comment suppressing this rule."""
    for text in line_texts:
        if "#" not in text:
            continue
        for m in _NOQA.finditer(text):
            codes = m.group("codes")
            if codes is None or code.upper() in {c.strip().upper() for c in codes.split(",")}:
                return True
        for m in _IGNORE.finditer(text):
            items = m.group("items")
            if items is None:
                return True
            wanted = {i.strip() for i in items.split(",") if i.strip()}
            if code.upper() in {w.upper() for w in wanted} or name in wanted:
                return True
    return False


_NOQA_LIST = re.compile(r"#\s*noqa\s*:\s*(?P<codes>[\w\-]+(?:[\s,]+[\w\-]+)*)", re.IGNORECASE)
_OUR_CODE = re.compile(r"^EL(?=\w*\d)\w{1,6}$", re.IGNORECASE)  # EL101, EL1O1; not "eliminates"


def unknown_suppressions(source) -> list[str]:
    """Warnings for `# noqa: ...` codes that look like evallint's (EL...) but are not
    catalogued (a typo such as EL1O1 suppresses nothing), and for `# evallint:
    ignore[...]` items that are neither a catalogued code nor a name. Other tools'
    codes (E501, PLC0415) are not ours to judge."""
    from .catalogue import catalogued
    from .registry import load_rules

    rules = load_rules()

    def known(item: str) -> bool:
        return catalogued(item) is not None or rules.get(item) is not None

    text = source.text
    if "noqa" not in text and "evallint" not in text:
        return []
    out = []
    for number, line in enumerate(text.split("\n"), 1):
        if "#" not in line:
            continue
        unknown = []
        for m in _NOQA_LIST.finditer(line):
            unknown += [c for c in re.split(r"[\s,]+", m.group("codes"))
                        if _OUR_CODE.match(c) and not known(c)]
        for m in _IGNORE.finditer(line):
            items = m.group("items") or ""
            unknown += [i.strip() for i in items.split(",") if i.strip() and not known(i.strip())]
        if unknown:
            cell, cell_line = source.to_cell(number)
            where = f"{source.path}:cell {cell}:{cell_line}" if cell is not None else f"{source.path}:{number}"
            names = ", ".join(dict.fromkeys(unknown))
            out.append(f"{where}: the suppression names {names}, which is no evallint code or rule name; "
                       "it suppresses nothing (see `evallint rules`)")
    return out


def skips_file(text: str) -> bool:
    return bool(SKIP_FILE.search(text))
