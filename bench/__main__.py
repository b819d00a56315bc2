"""Run every benchmark module ``bench/bench_*.py`` (``make bench``); each exposes ``main()``.

``python -m bench bench_pos_http bench_api`` runs only the named ones.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(names: list[str] | None = None) -> int:
    """Run each benchmark (or those named) in turn; non-zero exit when one fails to run."""
    failed = 0
    paths = sorted(Path(__file__).parent.glob("bench_*.py"))
    if names:
        unknown = set(names) - {p.stem for p in paths}
        if unknown:
            print(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
            return 2
        paths = [p for p in paths if p.stem in names]
    for path in paths:
        module = importlib.import_module(f"bench.{path.stem}")
        print(f"== {path.stem}")
        try:
            module.main()
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            print(f"{path.stem} failed: {exc!r}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
