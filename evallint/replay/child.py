"""Start the replay child: isolated interpreter, no proxies, a time limit, a scratch cwd.

The child imports torch before it reads its jobs, so `Child()` can be started before
the parent lints the file and cuts the regions: torch's import (most of a replay's
start-up) runs on another core meanwhile. A child that gets no jobs is stopped.
"""
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


class Child:
    """One started replay child; `run` hands it its jobs once, `close` stops an unused one."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        harness = Path(__file__).with_name("harness.py")
        self._scratch = tempfile.TemporaryDirectory(prefix="evallint-replay-")
        self._proc = subprocess.Popen([sys.executable, "-I", str(harness)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      cwd=self._scratch.name, env=env)

    def run(self, jobs: list[dict], device: str, seed: int, time_limit: float) -> ChildResult:
        request = {"jobs": jobs, "device": device, "seed": seed, "time_limit": time_limit}
        # Per job: two versions × two passes, each under the time limit; plus torch's start-up.
        total = 30 + 4 * time_limit * max(1, len(jobs))
        out = ChildResult()
        try:
            stdout, out.stderr = self._proc.communicate(json.dumps(request), timeout=total)
        except subprocess.TimeoutExpired:
            out.timed_out = True
            self._proc.kill()
            stdout, _ = self._proc.communicate()
        finally:
            self.close()
        for line in (stdout or "").splitlines():
            if not line.startswith(MARK):
                continue
            data = json.loads(line[len(MARK):])
            if "id" in data:
                out.results[data["id"]] = data
            else:
                out.header = data
        return out

    def close(self) -> None:
        """Stop the child if it still runs (it got no jobs) and remove its scratch folder."""
        if self._proc.returncode is None:
            self._proc.kill()
            self._proc.communicate()
        self._scratch.cleanup()
