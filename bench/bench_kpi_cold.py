"""KPI jobs in a fresh process, as Dagster's default executor runs each step: the first run_job.

For each of ``store_visits``, ``store_daily`` and ``store_hourly`` a new Python process imports
tenpo, opens DuckDB as the warehouse does and times its first ``prepared.run_job`` of the job
on empty inputs in the contract schemas (so the figure is the step's per-process job overhead:
building and compiling the SQL, or rendering it, not the rows). Two arms, interleaved, best of
3 each: without a template store (every process compiles, as before) and with a store that an
earlier process filled (``prepared.TemplateStore``, what ``open_warehouse`` gives the mart
assets under ``{data_dir}/job_sql/``). CPU is the process' own (``time.process_time``).
Reported: the summed CPU of the three jobs' first runs, compiled vs rendered from the store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._common import report

JOBS = ("store_visits", "store_daily", "store_hourly")
REPEATS = 3

# One cold process: argv = job, store folder or "-"; prints {"wall": s, "cpu": s}.
_CHILD = r"""
import json, sys, time, warnings
from datetime import date
import ibis
import pyarrow as pa
from tenpo.jobs import VisitRules, store_daily, store_hourly, store_visits
from tenpo.jobs.kpis import DAILY_KEYS, HOURLY_KEYS
from tenpo.jobs.timezones import OFFSETS_SCHEMA
from tenpo.warehouse import duckdb_ibis, prepared
from tenpo.warehouse.schemas import (
    MART_STORE_VISITS, RAW_IOT_COUNTS, RAW_POS_TRANSACTIONS, RAW_VISITOR_EVENTS,
)

warnings.filterwarnings("ignore")
job, folder = sys.argv[1], sys.argv[2]
con = duckdb_ibis.connect()
empty = lambda schema: ibis.memtable(schema.empty_table())
days = [date(2026, 11, 2)]
staff = ibis.memtable(pa.table({"tenant_id": pa.array([], pa.string()),
                                "person_id": pa.array([], pa.string())}))
daily_in = (empty(RAW_POS_TRANSACTIONS), empty(RAW_IOT_COUNTS), empty(MART_STORE_VISITS))
fn, args, params = {
    "store_visits": (store_visits, (empty(RAW_VISITOR_EVENTS),), dict(
        staff=staff, offsets=empty(OFFSETS_SCHEMA), days=days, rules=VisitRules(),
        default_utc_offset_s=32400)),
    "store_daily": (store_daily, daily_in, dict(
        days=days, repeat_window_days=180, order_by=DAILY_KEYS)),
    "store_hourly": (store_hourly, daily_in, dict(
        offsets=empty(OFFSETS_SCHEMA), default_utc_offset_s=32400, order_by=HOURLY_KEYS)),
}[job]
store = None if folder == "-" else prepared.TemplateStore(folder)
t0, c0 = time.perf_counter(), time.process_time()
prepared.run_job(con, fn, *args, store=store, **params)
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}))
"""


def _first_run(job: str, folder: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, job, folder],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    """Fill a store once, then time cold first runs with and without it (interleaved)."""
    best: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-kpi-cold-") as folder:
        for job in JOBS:
            _first_run(job, folder)  # an earlier step: compiles and stores
        for _ in range(REPEATS):
            for job in JOBS:
                for arm, where in (("compiled", "-"), ("stored", folder)):
                    got = _first_run(job, where)
                    old = best.setdefault((job, arm), got)
                    best[(job, arm)] = {k: min(old[k], got[k]) for k in got}
    for job in JOBS:
        c, s = best[(job, "compiled")], best[(job, "stored")]
        print(
            f"{job}: first run in a fresh process {c['cpu']:.3f} s CPU ({c['wall']:.3f} wall) "
            f"compiled, {s['cpu']:.3f} s CPU ({s['wall']:.3f} wall) from the store"
        )
    compiled = sum(best[(j, "compiled")]["cpu"] for j in JOBS)
    stored = sum(best[(j, "stored")]["cpu"] for j in JOBS)
    report(
        "kpi_cold_start",
        stored,
        "s CPU",
        baseline=compiled,
        target=2.0,
        higher_is_better=False,
        jobs=list(JOBS),
        **{
            f"{j}_{arm}_cpu_s": round(best[(j, arm)]["cpu"], 3)
            for j in JOBS
            for arm in ("compiled", "stored")
        },
        **{
            f"{j}_{arm}_wall_s": round(best[(j, arm)]["wall"], 3)
            for j in JOBS
            for arm in ("compiled", "stored")
        },
    )


if __name__ == "__main__":
    main()
