"""Run every benchmark module ``bench/bench_*.py`` (``make bench``); each exposes ``main()``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    """Run each benchmark in turn; non-zero exit when one fails to run."""
    failed = 0
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        module = importlib.import_module(f"bench.{path.stem}")
        print(f"== {path.stem}")
        try:
            module.main()
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            print(f"{path.stem} failed: {exc!r}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
