"""`evallint merge`: one report from the reports of `check --shard K/N` runners.

JSON reports (lists of diagnostics) are concatenated and sorted as one run sorts
them. SARIF reports become one run: the rule descriptors are united by id (each
result's `ruleIndex` renumbered to match) and the results sorted by place. The
shards partition the files, so nothing is counted twice; identical results are
still dropped, so merging a report with itself changes nothing.
"""
from __future__ import annotations

import json
from typing import Any


class MergeError(ValueError):
    pass


def merge_reports(texts: list[str]) -> tuple[str, str]:
    """(format, merged text); the format is that of the inputs: "json" or "sarif"."""
    docs = []
    for i, text in enumerate(texts):
        try:
            docs.append(json.loads(text))
        except ValueError as exc:
            raise MergeError(f"input {i + 1} is not JSON: {exc}") from None
    if all(isinstance(d, list) for d in docs):
        return "json", json.dumps(merge_json(docs), indent=2, ensure_ascii=False) + "\n"
    if all(isinstance(d, dict) and isinstance(d.get("runs"), list) for d in docs):
        return "sarif", json.dumps(merge_sarif(docs), indent=2) + "\n"
    raise MergeError("the inputs must all be evallint JSON reports (`--format json`) or all SARIF "
                     "(`--format sarif`)")


def _json_key(d: dict) -> tuple:
    return (d.get("path", ""), d.get("cell") or 0, d.get("line", 0), d.get("column", 0), d.get("code", ""))


def merge_json(docs: list[list[dict]]) -> list[dict]:
    return _unique(sorted((d for doc in docs for d in doc), key=_json_key))


def merge_sarif(docs: list[dict]) -> dict:
    runs = [run for doc in docs for run in doc["runs"]]
    if not runs:
        return docs[0]
    base = dict(runs[0])
    rules: dict[str, dict] = {}
    for run in runs:
        for rule in run.get("tool", {}).get("driver", {}).get("rules", []):
            rules.setdefault(rule["id"], rule)
    ordered = [rules[code] for code in sorted(rules)]
    index = {rule["id"]: i for i, rule in enumerate(ordered)}
    results = []
    for run in runs:
        for result in run.get("results", []):
            result = dict(result)
            if result.get("ruleId") in index:
                result["ruleIndex"] = index[result["ruleId"]]
            results.append(result)
    results.sort(key=_sarif_key)
    driver = {**base.get("tool", {}).get("driver", {}), "rules": ordered}
    base["tool"] = {**base.get("tool", {}), "driver": driver}
    base["results"] = _unique(results)
    return {**docs[0], "runs": [base]}


def _sarif_key(result: dict) -> tuple:
    loc = (result.get("locations") or [{}])[0].get("physicalLocation", {})
    region = loc.get("region", {})
    return (loc.get("artifactLocation", {}).get("uri", ""), region.get("properties", {}).get("cell") or 0,
            region.get("startLine", 0), region.get("startColumn", 0), result.get("ruleId", ""))


def _unique(items: list[Any]) -> list[Any]:
    out, seen = [], set()
    for item in items:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
