"""Score evallint on a real-code evaluation set: recall on known bugs, false findings on clean files.

    python benchmarks/realcode.py EVALSET_DIR [--select CODES] [--json] [--tolerance 3] [--no-extra]

EVALSET_DIR holds `manifest.json` and optionally `extra/*.json`, each a JSON list of

    {"path": "buggy/x.py",              # relative to EVALSET_DIR
     "origin": "owner/repo:path@commit",  # or "pypi:package==version:path"
     "kind": "clean" | "buggy",
     "expected": [{"code": "EL101", "line": 42, "lines": [40], "cell": 3, "note": "...",
                   "from_finding": false}]}

(`cell` only for notebooks: the 1-based cell index, with `line` inside the cell; `lines`,
optional, other lines where the finding may equally well be reported, e.g. the call of an
evaluation function as well as the `model.eval()` inside it; `from_finding`, optional,
true when the expectation was first seen as a finding of evallint on a file thought clean and
then judged a real bug: such expectations are counted, and also reported apart, because they
cannot measure what evallint misses).

The real command-line tool runs over every listed file (in a few batched calls) with an
empty configuration, so the set's own files cannot change the selection. A finding matches
an expected one when the code is the same, the cell is the same and the line is within the
tolerance; each finding matches at most one expectation. Codes that no installed rule
provides are simply never found. EL000/EL001 (files that do not parse or crash) count as
findings like any other. Nothing here measures time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

SEED = ("EL101", "EL102", "EL201", "EL202", "EL301", "EL302")  # the documented seed rules
BATCH = 150  # files per CLI call: keeps the command line short on every platform


def load_entries(root: Path, extra: bool = True) -> list[dict]:
    sources = [root / "manifest.json"] + (sorted((root / "extra").glob("*.json")) if extra else [])
    entries: list[dict] = []
    seen: dict[str, str] = {}
    for source in sources:
        if not source.is_file():
            continue
        data = json.loads(source.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise SystemExit(f"{source}: expected a JSON list of entries")
        for entry in data:
            path = entry.get("path")
            kind = entry.get("kind")
            if not isinstance(path, str) or kind not in ("clean", "buggy"):
                raise SystemExit(f"{source}: bad entry {entry!r}")
            norm = os.path.normpath(path)
            if norm in seen:
                print(f"warning: {path} listed twice ({seen[norm]} and {source.name}); "
                      f"keeping the first", file=sys.stderr)
                continue
            if not (root / norm).is_file():
                print(f"warning: {path} ({source.name}) does not exist; skipped", file=sys.stderr)
                continue
            seen[norm] = source.name
            entries.append({**entry, "path": norm, "source": source.name,
                            "expected": list(entry.get("expected") or [])})
    if not entries:
        raise SystemExit(f"{root}: no entries (manifest.json / extra/*.json)")
    return entries


def installed_codes(root: Path) -> list[str]:
    # same working folder as the checks, so both import the same evallint
    proc = subprocess.run([sys.executable, "-m", "evallint", "rules", "--format", "json"],
                          cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"`evallint rules` failed:\n{proc.stderr[-2000:]}")
    return sorted(r["code"] for r in json.loads(proc.stdout))


def cli_selection(root: Path, select: str) -> str:
    """The selection restricted to installed codes (the CLI rejects unknown ones)."""
    codes = [c for c in installed_codes(root) if selected(c, select)]
    return ",".join(codes)


def run_cli(root: Path, paths: list[str], select: str) -> list[dict]:
    """All findings, by the real CLI, with paths made relative to root."""
    findings: list[dict] = []
    select = cli_selection(root, select)
    if not select:  # none of the wanted rules exists yet: nothing can be found
        return findings
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "evallint.toml"
        config.write_text("", encoding="utf-8")  # no [tool.evallint] from the set's folders
        for start in range(0, len(paths), BATCH):
            batch = paths[start:start + BATCH]
            cmd = [sys.executable, "-m", "evallint", "check", "--format", "json", "--no-cache",
                   "--exit-zero", "--config", str(config), "--select", select, *batch]
            proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
            try:
                out = json.loads(proc.stdout or "[]")
            except json.JSONDecodeError:
                raise SystemExit(f"evallint printed no JSON (exit {proc.returncode}):\n"
                                 f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
            if proc.returncode != 0:
                raise SystemExit(f"evallint exited {proc.returncode}:\n{proc.stderr[-2000:]}")
            for d in out:
                p = Path(d["path"])
                if p.is_absolute():
                    p = Path(os.path.relpath(p, root))
                findings.append({**d, "path": os.path.normpath(str(p))})
    return findings


def match(expected: list[dict], found: list[dict], tolerance: int):
    """Pairs (expected index -> finding index), nearest line first, one-to-one."""
    pairs = []
    for i, e in enumerate(expected):
        for j, f in enumerate(found):
            if f["code"] != e["code"] or (e.get("cell") or None) != (f.get("cell") or None):
                continue
            # "lines" lists other acceptable lines where a rule may sensibly report it
            dist = min(abs(int(f["line"]) - int(x)) for x in [e["line"], *e.get("lines", [])])
            if dist <= tolerance:
                pairs.append((dist, i, j))
    pairs.sort()
    used_e, used_f, result = set(), set(), {}
    for _, i, j in pairs:
        if i not in used_e and j not in used_f:
            used_e.add(i)
            used_f.add(j)
            result[i] = j
    return result


def selected(code: str, select: str) -> bool:
    prefixes = [s.strip() for s in select.split(",") if s.strip()]
    return any(code.startswith(p) for p in prefixes)


def score(root: Path, select: str, tolerance: int, extra: bool = True) -> dict:
    entries = load_entries(root, extra)
    findings = run_cli(root, [e["path"] for e in entries], select)
    by_path = defaultdict(list)
    for f in findings:
        by_path[f["path"]].append(f)

    per_code = defaultdict(lambda: {"expected": 0, "found": 0, "missed": [], "independent": 0,
                                    "independent_found": 0})
    extra_buggy, false_clean, clean_hit = [], [], []
    n_clean = n_buggy = 0
    for e in entries:
        got = sorted(by_path.get(e["path"], []), key=lambda f: (f.get("cell") or 0, f["line"], f["code"]))
        if e["kind"] == "clean":
            n_clean += 1
            if got:
                clean_hit.append(e["path"])
                false_clean.extend(dict(f, origin=e.get("origin", "")) for f in got)
            continue
        n_buggy += 1
        wanted = [x for x in e["expected"] if selected(x["code"], select)]
        pairs = match(wanted, got, tolerance)
        for i, x in enumerate(wanted):
            row = per_code[x["code"]]
            row["expected"] += 1
            independent = not x.get("from_finding")
            row["independent"] += independent
            if i in pairs:
                row["found"] += 1
                row["independent_found"] += independent
            else:
                row["missed"].append({"path": e["path"], "line": x["line"], "cell": x.get("cell"),
                                      "note": x.get("note", "")})
        matched = set(pairs.values())
        extra_buggy.extend(f for j, f in enumerate(got) if j not in matched)

    total_expected = sum(r["expected"] for r in per_code.values())
    total_found = sum(r["found"] for r in per_code.values())
    false_by_code = Counter(f["code"] for f in false_clean)
    seed_rows = [r for c, r in per_code.items() if c in SEED]
    seed_expected = sum(r["expected"] for r in seed_rows)
    seed_found = sum(r["found"] for r in seed_rows)
    seed_ind = sum(r["independent"] for r in seed_rows)
    seed_ind_found = sum(r["independent_found"] for r in seed_rows)
    seed_clean_hit = {f["path"] for f in false_clean if f["code"] in SEED}
    return {
        "select": select, "tolerance": tolerance,
        "files": {"clean": n_clean, "buggy": n_buggy},
        "per_code": {c: {"expected": r["expected"], "found": r["found"],
                         "recall": r["found"] / r["expected"] if r["expected"] else None,
                         "independent_expected": r["independent"],
                         "independent_found": r["independent_found"],
                         "false_findings_on_clean": false_by_code.get(c, 0),
                         "missed": r["missed"]}
                     for c, r in sorted(per_code.items())},
        "false_findings_by_code": dict(sorted(false_by_code.items())),
        "extra_on_buggy": [slim(f) for f in extra_buggy],
        "clean_files_with_finding": clean_hit,
        "false_findings": [dict(slim(f), origin=f["origin"]) for f in false_clean],
        "totals": {"expected": total_expected, "found": total_found,
                   "recall": total_found / total_expected if total_expected else None,
                   "clean_files": n_clean, "clean_files_with_finding": len(clean_hit),
                   "clean_share_with_finding": len(clean_hit) / n_clean if n_clean else None,
                   "false_findings": len(false_clean), "extra_on_buggy": len(extra_buggy)},
        "seed": {"codes": list(SEED), "expected": seed_expected, "found": seed_found,
                 "recall": seed_found / seed_expected if seed_expected else None,
                 "independent_expected": seed_ind, "independent_found": seed_ind_found,
                 "independent_recall": seed_ind_found / seed_ind if seed_ind else None,
                 "clean_files_with_finding": len(seed_clean_hit),
                 "clean_share_with_finding": len(seed_clean_hit) / n_clean if n_clean else None},
    }


def slim(f: dict) -> dict:
    return {"path": f["path"], "cell": f.get("cell"), "line": f["line"], "code": f["code"],
            "message": f.get("message", "")}


def where(f: dict) -> str:
    cell = f"[cell {f['cell']}]" if f.get("cell") else ""
    return f"{f['path']}{cell}:{f['line']}"


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def print_report(r: dict) -> None:
    t = r["totals"]
    print(f"evallint on a real-code set: {r['files']['buggy']} buggy files, {r['files']['clean']} clean "
          f"files (select {r['select']}, line tolerance ±{r['tolerance']})\n")
    print("Recall per rule (expected findings in buggy files)")
    print(f"  {'code':<7} {'expected':>8} {'found':>6} {'recall':>7}  {'false on clean':>14}  "
          f"{'independent (not from findings)':>31}")
    codes = sorted(set(r["per_code"]) | set(r["false_findings_by_code"]))
    for c in codes:
        row = r["per_code"].get(c, {"expected": 0, "found": 0, "recall": None,
                                    "independent_expected": 0, "independent_found": 0})
        ind_e, ind_f = row["independent_expected"], row["independent_found"]
        ind = f"{ind_f}/{ind_e} ({pct(ind_f / ind_e if ind_e else None)})"
        print(f"  {c:<7} {row['expected']:>8} {row['found']:>6} {pct(row['recall']):>7}  "
              f"{r['false_findings_by_code'].get(c, 0):>14}  {ind:>31}")
    missed = [(c, m) for c, row in r["per_code"].items() for m in row["missed"]]
    if missed:
        print("\nMissed expectations")
        for c, m in missed:
            note = f"  ({m['note']})" if m.get("note") else ""
            print(f"  {where(m)} {c}{note}")
    if r["extra_on_buggy"]:
        print("\nExtra findings on buggy files (not expected; judge each)")
        for f in r["extra_on_buggy"]:
            print(f"  {where(f)} {f['code']} {f['message']}")
    print(f"\nClean files with a finding: {t['clean_files_with_finding']} of {t['clean_files']} "
          f"({pct(t['clean_share_with_finding'])}), {t['false_findings']} findings")
    for f in r["false_findings"]:
        print(f"  {where(f)} {f['code']} {f['message']}")
    print(f"\nTotals: recall {t['found']}/{t['expected']} ({pct(t['recall'])}); "
          f"clean files with a false finding {t['clean_files_with_finding']}/{t['clean_files']} "
          f"({pct(t['clean_share_with_finding'])}); extra findings on buggy files {t['extra_on_buggy']}")
    s = r["seed"]
    print(f"Seed rules ({', '.join(s['codes'])}): recall {s['found']}/{s['expected']} ({pct(s['recall'])}), "
          f"independent {s['independent_found']}/{s['independent_expected']} ({pct(s['independent_recall'])}); "
          f"clean files with a seed-rule finding {s['clean_files_with_finding']}/{t['clean_files']} "
          f"({pct(s['clean_share_with_finding'])})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evalset", type=Path, help="folder with manifest.json (and extra/*.json)")
    ap.add_argument("--select", default="EL", help="rule codes or prefixes, comma-separated (default: EL)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--tolerance", type=int, default=3, help="line tolerance for a match (default: 3)")
    ap.add_argument("--no-extra", action="store_true", help="read manifest.json only, not extra/*.json")
    args = ap.parse_args(argv)
    result = score(args.evalset.resolve(), args.select, args.tolerance, extra=not args.no_extra)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
