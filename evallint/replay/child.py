"""Start the replay child: isolated interpreter, no proxies, a time limit, a scratch cwd."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .harness import MARK

_PROXY_VARS = {"http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy"}


@dataclass
class ChildResult:
    header: dict = field(default_factory=dict)     # device and torch version, or a fatal error
    results: dict = field(default_factory=dict)    # job id -> result
    timed_out: bool = False
    stderr: str = ""


def run_child(jobs: list[dict], device: str, seed: int, time_limit: float) -> ChildResult:
    request = {"jobs": jobs, "device": device, "seed": seed, "time_limit": time_limit}
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # Per job: two versions × two passes, each under the time limit; plus torch's start-up.
    total = 30 + 4 * time_limit * max(1, len(jobs))
    harness = Path(__file__).with_name("harness.py")
    out = ChildResult()
    with tempfile.TemporaryDirectory(prefix="evallint-replay-") as scratch:
        try:
            proc = subprocess.run([sys.executable, "-I", str(harness)], input=json.dumps(request),
                                  capture_output=True, text=True, timeout=total, cwd=scratch, env=env)
            stdout, out.stderr = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            out.timed_out = True
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    for line in stdout.splitlines():
        if not line.startswith(MARK):
            continue
        data = json.loads(line[len(MARK):])
        if "id" in data:
            out.results[data["id"]] = data
        else:
            out.header = data
    return out
