"""How even `--shard K/N` splits a tree: files and bytes per shard.

    python benchmarks/shard_balance.py FOLDER [--shards 2,4,8]

Uses the partition `evallint check --shard` uses (a hash of the project-relative
path), over the files `evallint check FOLDER` would discover.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--shards", default="2,4,8")
    args = ap.parse_args(argv)
    from evallint.config import load_settings
    from evallint.discover import discover
    from evallint.registry import load_rules
    from evallint.shard import shard_of

    settings = load_settings(Path(args.folder), rules=load_rules())
    files = list(discover([args.folder], settings))
    sizes = {f: os.path.getsize(f) for f in files}
    total = sum(sizes.values())
    print(f"{len(files)} files, {total / 1e6:.1f} MB under {args.folder} (root {settings.root})")
    for n in (int(x) for x in args.shards.split(",")):
        count, size = [0] * n, [0] * n
        for f in files:
            k = shard_of(f, settings.root, n) - 1
            count[k] += 1
            size[k] += sizes[f]
        print(f"N={n}: files {count} (max/mean {max(count) / (len(files) / n):.3f}); "
              f"MB {[round(s / 1e6, 2) for s in size]} (max/mean {max(size) / (total / n):.3f})")


if __name__ == "__main__":
    main()
