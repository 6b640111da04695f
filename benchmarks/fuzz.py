"""Fuzz evallint through its real CLI: random programs and mutated fixtures.

Each program is either a random module from pysource-codegen with an ML preamble (so
the rules have an evaluation loop, a model and accumulators to look at), or a mutant
of one of the project's own fixtures (lines deleted, duplicated or re-indented,
`=` <-> `+=`, eval/train swapped, a block wrapped in `with torch.no_grad():`).
Programs are written in batches to a folder, and for each batch:

1. `evallint check --format json` must exit 0 or 1, report no internal error, and
   print no traceback;
2. `evallint fix --unsafe-fixes` must leave every file parseable if it parsed before;
3. a second `evallint fix --unsafe-fixes` must change nothing.

    python benchmarks/fuzz.py --programs 10000 --seed 0 [--jobs 2] [--keep DIR]

Failures are copied to --keep (default: ./fuzz-failures) with the reason. The test
suite runs a small seeded sample of the same harness.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"

PREAMBLE = """\
import torch
import torch.nn as nn
model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
criterion = nn.CrossEntropyLoss()
correct = 0
total = 0
running_loss = 0.0
"""
EPILOGUE = """\
for x, y in test_loader:
    outputs = model(x)
    loss = criterion(outputs, y)
    running_loss += loss
    total += y.size(0)
    correct = (outputs.argmax(1) == y).sum().item()
print(100 * correct / total, running_loss / len(test_loader))
"""


# --- program generators ---------------------------------------------------------------

def random_program(seed: int) -> Optional[str]:
    """A random module from pysource-codegen between the ML preamble and an evaluation
    loop; None when the generator itself fails on this seed."""
    try:
        from pysource_codegen import generate
    except ImportError:  # pragma: no cover - the harness says so in main()
        return None
    try:
        body = generate(seed, depth_limit=5, node_limit=400)
    except Exception:  # the generator's own bugs (ast.unparse limits)
        return None
    return PREAMBLE + body + ("\n" if not body.endswith("\n") else "") + EPILOGUE


def _have_codegen() -> bool:
    try:
        import pysource_codegen  # noqa: F401
        return True
    except ImportError:
        return False


def fixture_sources() -> list[tuple[str, str]]:
    """(name, text) of every .py fixture, buggy and clean."""
    out = []
    for p in sorted(FIXTURES.rglob("*.py")):
        if p.name.endswith(".fixed.py"):
            continue
        out.append((p.stem, p.read_bytes().decode("utf-8", "replace")))  # a fixture may be latin-1 on purpose
    return out


def mutate(text: str, rng: random.Random, count: int) -> str:
    lines = text.split("\n")
    for _ in range(count):
        if not lines:
            break
        op = rng.choice(_MUTATIONS)
        lines = op(lines, rng)
    return "\n".join(lines)


def _pick(lines: list[str], rng: random.Random, pred=lambda l: l.strip() != "") -> Optional[int]:
    candidates = [i for i, l in enumerate(lines) if pred(l)]
    return rng.choice(candidates) if candidates else None


def _delete(lines, rng):
    i = _pick(lines, rng)
    return lines if i is None else lines[:i] + lines[i + 1:]


def _duplicate(lines, rng):
    i = _pick(lines, rng)
    return lines if i is None else lines[:i + 1] + [lines[i]] + lines[i + 1:]


def _reindent(lines, rng):
    i = _pick(lines, rng)
    if i is None:
        return lines
    line = lines[i]
    if line.startswith("    ") and rng.random() < 0.5:
        new = line[4:]
    else:
        new = "    " + line
    return lines[:i] + [new] + lines[i + 1:]


_AUG = re.compile(r"(?<![=!<>+\-*/%&|^@:])\+=")
_PLAIN = re.compile(r"(?<![=!<>+\-*/%&|^@:])=(?!=)")


def _assign_swap(lines, rng):
    i = _pick(lines, rng, lambda l: "=" in l)
    if i is None:
        return lines
    line = lines[i]
    if "+=" in line and rng.random() < 0.5:
        new = _AUG.sub("=", line, count=1)
    else:
        new = _PLAIN.sub("+=", line, count=1)
    return lines[:i] + [new] + lines[i + 1:]


def _eval_train(lines, rng):
    i = _pick(lines, rng, lambda l: any(w in l for w in ("eval", "train", "val", "test")))
    if i is None:
        return lines
    swaps = [("eval", "train"), ("train", "eval"), ("val", "train"), ("test", "train"), ("train", "test")]
    a, b = rng.choice([s for s in swaps if s[0] in lines[i]])
    return lines[:i] + [lines[i].replace(a, b, 1)] + lines[i + 1:]


def _wrap_no_grad(lines, rng):
    i = _pick(lines, rng, lambda l: l.strip() and not l.lstrip().startswith(("#", "else", "elif", "except",
                                                                             "finally", ")", "]", "}")))
    if i is None:
        return lines
    indent = len(lines[i]) - len(lines[i].lstrip())
    end = i + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    block = ["    " + l if l.strip() else l for l in lines[i:end]]
    return lines[:i] + [" " * indent + "with torch.no_grad():"] + block + lines[end:]


_MUTATIONS = [_delete, _duplicate, _reindent, _assign_swap, _assign_swap, _eval_train, _eval_train, _wrap_no_grad,
              _wrap_no_grad]


def programs(seed: int, count: int) -> list[tuple[str, str]]:
    """(file name, text): half random programs, half fixture mutants, seeded."""
    rng = random.Random(seed)
    fixtures = fixture_sources()
    can_generate = _have_codegen()
    out = []
    n = 0
    while len(out) < count:
        n += 1
        if (n % 2 or not can_generate) and fixtures:
            name, text = rng.choice(fixtures)
            out.append((f"mut_{seed}_{n}_{name}.py", mutate(text, rng, rng.randint(1, 4))))
        else:
            text = random_program(rng.randrange(1 << 30))
            if text is not None:
                out.append((f"gen_{seed}_{n}.py", text))
    return out


# --- the checks ---------------------------------------------------------------------------

@dataclass
class BatchResult:
    programs: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)   # (file name, reason)


def _cli(*args: str, cwd: Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "evallint", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


_NAMED = re.compile(r"([\w.\-]+\.py)")


def _blame(stderr: str, names: list[str]) -> list[str]:
    named = set(_NAMED.findall(stderr))
    return [n for n in names if n in named] or ["<batch>"]


def check_batch(folder: Path, batch: list[tuple[str, str]], jobs: int) -> BatchResult:
    """Write a batch of programs into `folder` and run the three checks on it."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, text in batch:
        (folder / name).write_text(text, encoding="utf-8")
    names = [n for n, _ in batch]
    result = BatchResult(programs=len(batch))
    common = ["--no-cache", "--jobs", str(jobs), "--select", "ALL", "."]
    r = _cli("check", "--format", "json", "--exit-zero", *common, cwd=folder)
    if r.returncode != 0 or "Traceback" in r.stderr or "internal error" in r.stderr:
        for n in _blame(r.stderr, names):
            result.failures.append((n, f"check exit {r.returncode}: {r.stderr.strip()[-1500:]}"))
    else:
        try:
            json.loads(r.stdout)
        except ValueError:
            result.failures.append(("<batch>", "check --format json printed no JSON"))
    parsed_before = {n: _parses(t) for n, t in batch}
    r = _cli("fix", "--unsafe-fixes", "--exit-zero", *common, cwd=folder)
    if r.returncode not in (0, 1) or "Traceback" in r.stderr or "internal error" in r.stderr:
        for n in _blame(r.stderr, names):
            result.failures.append((n, f"fix exit {r.returncode}: {r.stderr.strip()[-1500:]}"))
    once = {}
    for n in names:
        text = (folder / n).read_text(encoding="utf-8", errors="replace")
        once[n] = text
        if parsed_before[n] and not _parses(text):
            result.failures.append((n, "fix --unsafe-fixes left a file that does not parse"))
    first_fix_stderr = r.stderr
    r = _cli("fix", "--unsafe-fixes", "--exit-zero", *common, cwd=folder)
    for n in names:
        if (folder / n).read_text(encoding="utf-8", errors="replace") != once[n]:
            result.failures.append((n, "a second fix changed the file again (the fix does not converge)"))
    for line in (first_fix_stderr + r.stderr).splitlines():
        if "was not applied: the rule still reports" in line:
            result.failures.append((line.split(":")[0], f"a fix was refused by the guard: {line}"))
    return result


def run(count: int, seed: int, jobs: int, batch_size: int, keep: Optional[Path], work: Path,
        deadline: Optional[float] = None, log=print) -> BatchResult:
    total = BatchResult()
    batch_no = 0
    while total.programs < count and (deadline is None or time.monotonic() < deadline):
        size = min(batch_size, count - total.programs)
        batch = programs(seed * 100_003 + batch_no, size)
        originals = dict(batch)
        folder = work / f"batch{batch_no}"
        r = check_batch(folder, batch, jobs)
        total.programs += r.programs
        for name, reason in r.failures:
            total.failures.append((name, reason))
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                stem = f"b{batch_no}_{Path(name).stem}"
                if name in originals:
                    (keep / f"{stem}.py").write_text(originals[name], encoding="utf-8")
                (keep / f"{stem}.reason.txt").write_text(reason + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        log(f"batch {batch_no}: {total.programs} programs, {len(total.failures)} failures")
        batch_no += 1
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--programs", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--batch", type=int, default=250, help="programs per CLI run")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this long")
    ap.add_argument("--keep", type=Path, default=Path("fuzz-failures"))
    args = ap.parse_args(argv)
    try:
        import pysource_codegen  # noqa: F401
    except ImportError:
        print("note: pysource-codegen is not installed; only fixture mutants are generated "
              "(pip install pysource-codegen)", file=sys.stderr)
    deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
    with tempfile.TemporaryDirectory(prefix="evallint-fuzz-") as work:
        total = run(args.programs, args.seed, args.jobs, args.batch, args.keep, Path(work), deadline)
    print(f"{total.programs} programs, {len(total.failures)} failures")
    for name, reason in total.failures[:20]:
        print(f"  {name}: {reason.splitlines()[0][:200]}")
    return 1 if total.failures else 0


if __name__ == "__main__":
    sys.exit(main())
