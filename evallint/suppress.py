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


def skips_file(text: str) -> bool:
    return bool(SKIP_FILE.search(text))
