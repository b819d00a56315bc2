"""The whole platform at a small scale (``make bench``); ``make bench-scale`` runs the real sizes.

Two chains go through every stage (simulate, HTTP and MQTT ingest, streamer, marts, ML,
datamart export, API read-back checked against the ground truth): ``SMALL`` and ``LARGE``,
four times its store-days. The figure is the end-to-end time per store-day (send → API,
simulation excluded) of the large run against the small one measured in the same run: growth
must be linear or better, i.e. the large run's time per store-day within 1.2× of the small
run's (ratio = small / large ≥ 1/1.2). The same ratio in CPU time of the process tree (which
the machine's load does not confound) is reported beside it, overall and per stage. Each
size's full stage report is written to ``bench/results/scale_{N}x{D}.json`` like
``tenpo bench scale`` does.

Sizes: ``TENPO_BENCH_SCALE`` = ``N1xD1,N2xD2`` (default ``4x3,8x6``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from bench._common import RESULTS, report
from tenpo.core.settings import Settings
from tenpo.flow.scale import run_scale, write_result


def _sizes() -> list[tuple[int, int]]:
    raw = os.environ.get("TENPO_BENCH_SCALE", "4x3,8x6")
    return [(int(n), int(d)) for n, d in (s.lower().split("x") for s in raw.split(","))]


def main() -> None:
    for name in ("tenpo", "dagster"):
        logging.getLogger(name).setLevel(logging.WARNING)
    per_store_day: list[float] = []
    cpu_per_store_day: list[dict[str, float]] = []
    exact = True
    with tempfile.TemporaryDirectory(prefix="tenpo-bench-scale-") as tmp:
        base = Settings(data_dir=Path(tmp))
        for stores, days in _sizes():
            result = run_scale(
                base,
                Path(tmp) / f"{stores}x{days}",
                stores=stores,
                days=days,
                on_stage=lambda partial: write_result(partial, RESULTS),
            )
            body = result.as_dict()
            stages = ", ".join(f"{n} {s['seconds']:.1f}s" for n, s in body["stages"].items())
            print(
                f"scale {stores}x{days}: e2e {body['e2e_seconds']:.1f} s "
                f"({body['e2e_raw_rows_per_s']:,.0f} raw rows/s), truth "
                f"{'exact' if body['ground_truth_exact'] else 'DIFFERS'}; {stages}"
            )
            per_store_day.append(body["e2e_seconds_per_store_day"])
            cpu_per_store_day.append(
                {"e2e": body["e2e_cpu_seconds_per_store_day"], **body["cpu_seconds_per_store_day"]}
            )
            exact = exact and body["ground_truth_exact"]
    small, large = per_store_day[0], per_store_day[-1]
    report(
        "bench_scale_linearity",
        large,
        "s per store-day end to end",
        small,
        1 / 1.2 if exact else float("inf"),
        higher_is_better=False,
        sizes=[f"{n}x{d}" for n, d in _sizes()],
        ground_truth_exact=exact,
        cpu_ratio_small_over_large={
            k: round(v / cpu_per_store_day[-1][k], 3) if cpu_per_store_day[-1].get(k) else None
            for k, v in cpu_per_store_day[0].items()
        },
    )
