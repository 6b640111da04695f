"""JUnit XML: one test case per checked file, one <failure> per finding.

Clean files are passing cases, so a CI dashboard shows what was checked, not only
what failed. `failures` on the suite counts failing test cases (files), as the JUnit
schema defines it; every finding still has its own <failure> element.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..baseline import relative_posix
from ..diagnostic import Diagnostic
from . import location

# Characters XML 1.0 cannot carry even escaped (control characters from odd sources).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def render(diagnostics: list[Diagnostic], ctx: Any) -> str:
    cwd = Path(ctx.cwd)
    by_file: dict[str, list[Diagnostic]] = {relative_posix(p, cwd, cwd): [] for p in ctx.files_checked}
    for diag in sorted(diagnostics, key=lambda d: d.sort_key):
        by_file.setdefault(relative_posix(diag.path, cwd, cwd), []).append(diag)

    failing = sum(1 for found in by_file.values() if found)
    counts = {"tests": str(len(by_file)), "failures": str(failing), "errors": "0"}
    root = ET.Element("testsuites", {"name": "evallint", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "evallint", **counts, "skipped": "0"})
    for path in sorted(by_file):
        case = ET.SubElement(suite, "testcase", {"classname": "evallint", "name": _xml_safe(path),
                                                 "file": _xml_safe(path)})
        for diag in by_file[path]:
            failure = ET.SubElement(case, "failure", {"message": _xml_safe(diag.message),
                                                      "type": diag.code})
            failure.text = _xml_safe(f"{location(diag.with_path(path))}: {diag.code} {diag.message}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
