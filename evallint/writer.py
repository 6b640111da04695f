"""Atomic writes that keep the file's mode bits: a temporary file in the same folder,
then an atomic replace. Encoding, BOM, newlines and notebook layout are the Source's job."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def write_atomic(path: str, data: bytes) -> None:
    # A symlink stays a link: the file it points to is the one rewritten.
    target = Path(os.path.realpath(path))
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".evallint-tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
