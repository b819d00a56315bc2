"""KPI jobs: one business date of many stores, Ibis on DuckDB vs a straightforward pandas version.

Synthetic raw rows in the contract schemas (numpy, seeded) for ``STORES`` stores of two
tenants on one date: ~1,000 receipts per store (sales, ~2 % returns, ~0.5 % voids), people
counter intervals (1-minute ``entrance`` and ``passby`` counts over 15 hours) and, for 40 % of
the stores, camera visits of that date and the day before (repeat visitors).

Both arms compute the daily mart's KPIs — net sales excl./incl. tax, transactions, units,
visitors, passers-by, unique and repeat visitors, dwell median and mean, open visits, counter
completeness (per entrance device: no gap between its first and last interval) and the
ratios — from the same in-memory inputs (pandas gets ready-made DataFrames, its conversion is
not timed; DuckDB reads the Arrow tables), and the results are asserted equal. The arms run
interleaved, 3 rounds of one run each, and each arm's best time counts. Reported: rows/s of
input (receipts + count intervals + visits) of ``store_daily`` vs pandas; target 5× and
< 10 s. DuckDB runs the job as the mart assets do, through ``Warehouse.run_job``
(``tenpo.warehouse.prepared``): a run builds no expression, it binds the inputs to the job's
SQL compiled once per shape (job, input schemas, parameters, the dates' gaps) and kept for
the process. The first run of a process compiles (reported as ``first_run_s``); the best of
3 is a later run, as any later date of a long-lived process is.

A second figure, ``kpi_daily_parquet``, runs the same job the way the mart assets do: DuckDB
reads the inputs from Parquet files (written once, untimed; reading them is timed), against
the same pandas time (whose inputs are still ready-made frames).

A third, ``kpi_daily_pipeline``, hands the job what ``mart_store_daily`` hands it: a
``Warehouse`` over a lake of the same rows as the streamer writes them (``parquet_bytes``
parts of ``PART_ROWS`` rows per tenant; visits as mart parts), POS and counts read with their
reading rules through ``Warehouse.materialized`` (untimed, reported as ``inputs_read_s``):
without repeated keys that is the scan of the parts itself, so the job reads Parquet. The
pipeline never hands the job in-memory Arrow tables; the first figure is the in-memory case.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench._common import report
from tenpo.jobs import store_daily
from tenpo.jobs.kpis import POS_COLUMNS
from tenpo.lake import open_lake
from tenpo.lake.keys import table_key
from tenpo.pipelines.kpis import _DAILY_COUNT_COLUMNS
from tenpo.streamer._tables import parquet_bytes
from tenpo.warehouse import Warehouse, duckdb_ibis, prepared, write_partition
from tenpo.warehouse.schemas import (
    MART_STORE_VISITS,
    RAW_IOT_COUNTS,
    RAW_POS_TRANSACTIONS,
)

STORES = 1000
RECEIPTS_PER_STORE = 1000
CAMERA_SHARE = 0.4
VISITS_PER_CAMERA_STORE = 400
DAY = date(2026, 11, 2)
OPEN_MINUTES = 15 * 60
SEED = 5
REPEATS = 3
PART_ROWS = 100_000  # rows per streamer part in the pipeline arm's lake

log = logging.getLogger(__name__)


def _stores() -> tuple[np.ndarray, np.ndarray]:
    tenants = np.array([f"t{1 + i % 2}" for i in range(STORES)])
    stores = np.array([f"st{i:05d}" for i in range(STORES)])
    return tenants, stores


def make_pos(rng: np.random.Generator) -> pa.Table:
    """``raw_pos_transactions`` rows of DAY: sale/return/void receipts with decimal totals."""
    tenants, stores = _stores()
    n = STORES * RECEIPTS_PER_STORE
    store_ix = np.repeat(np.arange(STORES), RECEIPTS_PER_STORE)
    u = rng.random(n)
    kind = np.where(u < 0.02, "return", np.where(u < 0.025, "void", "sale"))
    sign = np.where(kind == "return", -1, 1)
    excl = rng.integers(1, 5000, n) * sign  # whole yen
    incl = excl + np.sign(excl) * (np.abs(excl) // 10)  # 10 % tax, floored per receipt
    items = rng.integers(1, 8, n) * sign
    start = datetime(DAY.year, DAY.month, DAY.day, 0, tzinfo=UTC)
    ts = start + pd.to_timedelta(rng.integers(0, OPEN_MINUTES * 60, n), unit="s")
    money = pa.decimal128(18, 2)

    def dec(yen: np.ndarray) -> pa.Array:
        # int64 → decimal needs 19 digits; via decimal(38, 2) then down to the money type.
        return pa.array(yen, pa.int64()).cast(pa.decimal128(38, 2)).cast(money)

    cols = {
        "tenant_id": tenants[store_ix],
        "store_id": stores[store_ix],
        "register_id": "R1",
        "transaction_id": np.char.add("x", np.arange(n).astype(str)),
        "business_date": DAY,
        "ts": ts,
        "ts_local": (ts + pd.Timedelta(hours=9)).tz_localize(None),
        "kind": kind,
        "total_excl_tax": dec(excl),
        "total_tax": dec(incl - excl),
        "total_incl_tax": dec(incl),
        "item_count": items.astype(np.int32),
        "vendor": "vendor_a",
        "source_object_id": "bench",
        "received_at": None,
    }
    arrays = []
    for f in RAW_POS_TRANSACTIONS:
        value = cols[f.name]
        if isinstance(value, pa.Array):
            arrays.append(value)
        elif isinstance(value, str | date) or value is None:
            arrays.append(pa.array([value] * n, f.type))
        else:
            arrays.append(pa.array(value, f.type))
    return pa.Table.from_arrays(arrays, schema=RAW_POS_TRANSACTIONS)


def make_counts(rng: np.random.Generator) -> pa.Table:
    """1-minute ``entrance`` and ``passby`` intervals for every store over opening hours."""
    tenants, stores = _stores()
    per_store = OPEN_MINUTES * 2
    n = STORES * per_store
    store_ix = np.repeat(np.arange(STORES), per_store)
    minute = np.tile(np.arange(OPEN_MINUTES), STORES * 2)
    line = np.tile(np.repeat(np.array(["entrance", "passby"]), OPEN_MINUTES), STORES)
    start = pd.Timestamp(datetime(DAY.year, DAY.month, DAY.day, 0, tzinfo=UTC))
    starts = start + pd.to_timedelta(minute, unit="min")
    cols = {
        "tenant_id": tenants[store_ix],
        "store_id": stores[store_ix],
        "device_id": np.char.add(stores[store_ix], np.where(line == "entrance", "-e", "-p")),
        "line": line,
        "business_date": [DAY] * n,
        "interval_start": starts,
        "interval_end": starts + pd.Timedelta(minutes=1),
        "count_in": rng.poisson(np.where(line == "entrance", 1.5, 6.0)).astype(np.int32),
        "count_out": rng.poisson(np.where(line == "entrance", 1.5, 6.0)).astype(np.int32),
        "seq": minute.astype(np.int64),
        "source_object_id": ["bench"] * n,
    }
    return pa.Table.from_arrays(
        [pa.array(cols[f.name], f.type) for f in RAW_IOT_COUNTS], schema=RAW_IOT_COUNTS
    )


def make_visits(rng: np.random.Generator) -> pa.Table:
    """``mart_store_visits`` rows of DAY and the day before for the camera stores."""
    tenants, stores = _stores()
    cams = np.flatnonzero(rng.random(STORES) < CAMERA_SHARE)
    parts = []
    for day in (DAY - timedelta(days=1), DAY):
        n = len(cams) * VISITS_PER_CAMERA_STORE
        store_ix = np.repeat(cams, VISITS_PER_CAMERA_STORE)
        person = rng.integers(0, 60_000, n)  # a shared pool: some return, some cross stores
        start = pd.Timestamp(datetime(day.year, day.month, day.day, 0, tzinfo=UTC))
        entry = start + pd.to_timedelta(rng.integers(0, OPEN_MINUTES * 60, n), unit="s")
        dwell = rng.integers(60, 3600, n)
        open_visit = rng.random(n) < 0.01
        exit_ts = pd.Series(entry + pd.to_timedelta(dwell, unit="s"))
        exit_ts[open_visit] = pd.NaT
        cols = {
            "tenant_id": tenants[store_ix],
            "store_id": stores[store_ix],
            "business_date": [day] * n,
            "person_id": np.char.add(tenants[store_ix], np.char.add("-p", person.astype(str))),
            "entry_ts": entry,
            "exit_ts": exit_ts,
            "dwell_s": pa.array(dwell, pa.int64(), mask=open_visit),
            "entry_hour": ((entry.hour + 9) % 24).astype(np.int32),
            "camera_id": np.char.add(stores[store_ix], "-cam"),
        }
        parts.append(
            pa.Table.from_arrays(
                [pa.array(cols[f.name], f.type) for f in MART_STORE_VISITS],
                schema=MART_STORE_VISITS,
            )
        )
    return pa.concat_tables(parts)


def pandas_daily(pos: pd.DataFrame, counts: pd.DataFrame, visits: pd.DataFrame) -> pd.DataFrame:
    """The same daily KPIs written the straightforward pandas way."""
    keys = ["tenant_id", "store_id", "business_date"]
    counted = pos[pos["kind"].isin(["sale", "return"])]
    sales = counted.groupby(keys).agg(
        net_sales=("total_excl_tax", "sum"),
        net_sales_incl_tax=("total_incl_tax", "sum"),
        units=("item_count", "sum"),
    )
    receipts = pos.assign(
        s=(pos["kind"] == "sale").astype(int) - (pos["kind"] == "return").astype(int)
    )
    sales["transactions"] = receipts.groupby(keys)["s"].sum()
    entrance = counts[counts["line"] == "entrance"].groupby(keys)["count_in"].sum()
    passby_rows = counts[counts["line"] == "passby"]
    passby = (
        (passby_rows["count_in"] + passby_rows["count_out"])
        .groupby([passby_rows[k] for k in keys])
        .sum()
    )
    # Counter completeness, as the mart defines it: per entrance device, count × the first
    # interval's length covers the span from its first start to its last end.
    ent = counts[counts["line"] == "entrance"]
    dev = ent.groupby([*keys, "device_id"]).agg(
        n=("interval_start", "size"),
        first=("interval_start", "min"),
        first_end=("interval_end", "min"),
        last_end=("interval_end", "max"),
    )
    length = (dev["first_end"] - dev["first"]).dt.total_seconds()
    span = (dev["last_end"] - dev["first"]).dt.total_seconds()
    complete = (dev["n"] * length >= span).groupby(level=keys).all()
    out = (
        sales.join(entrance.rename("visitors"), how="outer")
        .join(passby.rename("passersby"), how="outer")
        .join(complete.rename("counter_complete"), how="outer")
    )
    today = visits[visits["business_date"] == DAY]
    history = visits[visits["business_date"] < DAY]
    person = (
        today.assign(open=today["exit_ts"].isna())
        .groupby(keys)
        .agg(
            unique_visitors=("person_id", "nunique"),
            dwell_time_median_s=("dwell_s", "median"),
            dwell_time_mean_s=("dwell_s", "mean"),
            open_visits=("open", "sum"),
        )
    )
    seen = history[["tenant_id", "person_id"]].drop_duplicates()
    repeaters = (
        today[keys + ["person_id"]].drop_duplicates().merge(seen, on=["tenant_id", "person_id"])
    )
    person["repeat_visitors"] = repeaters.groupby(keys).size()
    person["repeat_visitors"] = person["repeat_visitors"].fillna(0)
    out = out.join(person, how="outer")
    tx = out["transactions"].astype("float64")
    vis = out["visitors"].astype("float64")
    out["atv"] = out["net_sales"].astype("float64") / tx.where(tx != 0)
    out["conversion_rate"] = tx / vis.where(vis != 0)
    out["capture_rate"] = vis / out["passersby"].astype("float64").where(out["passersby"] != 0)
    out["repeat_rate"] = out["repeat_visitors"] / out["unique_visitors"].where(
        out["unique_visitors"] != 0
    )
    return out.reset_index()


COMPARED = (
    "net_sales",
    "net_sales_incl_tax",
    "transactions",
    "units",
    "visitors",
    "passersby",
    "unique_visitors",
    "repeat_visitors",
    "dwell_time_median_s",
    "dwell_time_mean_s",
    "atv",
    "conversion_rate",
    "capture_rate",
    "repeat_rate",
    "counter_complete",
    "open_visits",
)


def _as_rows(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[object, ...]]:
    def norm(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, Decimal):
            return v.quantize(Decimal("0.01"))
        if isinstance(v, float | np.floating):
            return round(float(v), 6)
        return int(v) if isinstance(v, int | np.integer) else v

    return {
        (r["tenant_id"], r["store_id"]): tuple(norm(r[c]) for c in COMPARED)
        for r in frame.to_dict("records")
    }


@dataclass
class _Arm:
    """One arm's timings over the interleaved rounds: best wall, best CPU (all threads of the
    process: less noisy under load), the first round's wall time and the last result."""

    run: Callable[[], object]
    wall: float = float("inf")
    cpu: float = float("inf")
    first: float = 0.0
    result: object = None


def _interleaved(arms: dict[str, _Arm]) -> None:
    """``REPEATS`` rounds, each running every arm once in turn, so a burst of load on the
    shared machine hits all arms alike; each arm keeps its best."""
    for i in range(REPEATS):
        for arm in arms.values():
            t0, c0 = time.perf_counter(), time.process_time()
            arm.result = arm.run()
            wall = time.perf_counter() - t0
            arm.first = wall if i == 0 else arm.first
            arm.wall = min(arm.wall, wall)
            arm.cpu = min(arm.cpu, time.process_time() - c0)


def main() -> None:
    """Generate, run both arms, assert equal results, report rows/s (target 5× pandas)."""
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    pos, counts, visits = make_pos(rng), make_counts(rng), make_visits(rng)
    gen_s = time.perf_counter() - t0
    rows = pos.num_rows + counts.num_rows + visits.num_rows
    print(
        f"generated {pos.num_rows:,} receipts, {counts.num_rows:,} count intervals, "
        f"{visits.num_rows:,} visits for {STORES} stores in {gen_s:.1f}s"
    )
    con = duckdb_ibis.connect()  # as the warehouse opens DuckDB
    frames = [t.to_pandas(types_mapper=pd.ArrowDtype) for t in (pos, counts, visits)]
    with tempfile.TemporaryDirectory(prefix="bench-kpis-") as tmp:
        files = []
        for name, table in (("pos", pos), ("counts", counts), ("visits", visits)):
            files.append(f"{tmp}/{name}.parquet")
            pq.write_table(table, files[-1])
        arrow_in = [ibis.memtable(t) for t in (pos, counts, visits)]
        parquet_in = [con.read_parquet(f) for f in files]
        # The pipeline arm: a lake of streamer-written parts (parquet_bytes, PART_ROWS rows
        # each, per tenant) and mart parts, read as mart_store_daily reads them.
        lake = open_lake(f"{tmp}/lake")
        for name, table in (("raw_pos_transactions", pos), ("raw_iot_counts", counts)):
            for tenant in ("t1", "t2"):
                of_tenant = table.filter(pc.equal(table["tenant_id"], tenant))
                for start in range(0, of_tenant.num_rows, PART_ROWS):
                    part = parquet_bytes(of_tenant.slice(start, PART_ROWS))
                    lake.put(table_key(name, tenant, DAY, f"part-{start}"), part)
        for tenant in ("t1", "t2"):
            for day in (DAY - timedelta(days=1), DAY):
                mine = pc.and_(
                    pc.equal(visits["tenant_id"], tenant),
                    pc.equal(visits["business_date"], pa.scalar(day, pa.date32())),
                )
                write_partition(lake, "mart_store_visits", tenant, day, visits.filter(mine))
        wh = Warehouse(lake)
        history = [DAY - timedelta(days=i) for i in range(1, 181)]
        t0, c0 = time.perf_counter(), time.process_time()
        pipeline_in = [
            wh.materialized(wh.table("raw_pos_transactions", dates=[DAY]).select(*POS_COLUMNS)),
            wh.materialized(wh.table("raw_iot_counts", dates=[DAY]).select(*_DAILY_COUNT_COLUMNS)),
            wh.table("mart_store_visits", dates=[*history, DAY]),
        ]
        read_s, read_cpu = time.perf_counter() - t0, time.process_time() - c0
        plain = all(wh._plain_scan(t) for t in pipeline_in[:2])  # no repeats: no temp tables
        arms = {
            "arrow": _Arm(lambda: prepared.run_job(con, store_daily, *arrow_in, days=[DAY])),
            # pandas' groupby of decimals runs through Python objects; Arrow decimals instead.
            "pandas": _Arm(lambda: pandas_daily(*frames)),
            "parquet": _Arm(lambda: prepared.run_job(con, store_daily, *parquet_in, days=[DAY])),
            "pipeline": _Arm(
                lambda: prepared.run_job(wh.con, store_daily, *pipeline_in, days=[DAY])
            ),
        }
        prepared.clear_cache()  # the first run compiles, as the first of a process does
        _interleaved(arms)
        wh.close()
    con.disconnect()
    ibis_s, ibis_cpu, ibis_first = arms["arrow"].wall, arms["arrow"].cpu, arms["arrow"].first
    parquet_s, parquet_cpu = arms["parquet"].wall, arms["parquet"].cpu
    pandas_s, pandas_cpu = arms["pandas"].wall, arms["pandas"].cpu
    pipeline_s, pipeline_cpu = arms["pipeline"].wall, arms["pipeline"].cpu
    ours, from_files, from_pipeline, theirs = (
        arms[k].result for k in ("arrow", "parquet", "pipeline", "pandas")
    )
    assert isinstance(ours, pa.Table) and isinstance(from_files, pa.Table)
    assert isinstance(from_pipeline, pa.Table) and isinstance(theirs, pd.DataFrame)

    want = _as_rows(theirs)
    for result in (ours, from_files, from_pipeline):
        got = _as_rows(result.to_pandas())
        assert got.keys() == want.keys(), "different store sets"
        differ = [k for k in got if got[k] != want[k]]
        assert not differ, (
            f"{len(differ)} stores differ, e.g. {differ[0]}: {got[differ[0]]} != {want[differ[0]]}"
        )
    print(
        f"store_daily on DuckDB {ibis_s:.2f}s (from Parquet {parquet_s:.2f}s, as the pipeline "
        f"hands it {pipeline_s:.2f}s), pandas {pandas_s:.2f}s; {len(want)} equal rows; CPU s "
        f"(all threads) {ibis_cpu:.2f} / {parquet_cpu:.2f} / {pipeline_cpu:.2f} / "
        f"{pandas_cpu:.2f}, CPU ratios {pandas_cpu / ibis_cpu:.2f}× / "
        f"{pandas_cpu / parquet_cpu:.2f}× / {pandas_cpu / pipeline_cpu:.2f}×; the pipeline's "
        f"read of POS and counts (dedup rules, materialized; untimed in the ratio) {read_s:.2f}s, "
        f"CPU {read_cpu:.2f}s"
    )
    report(
        "kpi_daily",
        rows / ibis_s,
        "rows/s",
        baseline=rows / pandas_s,
        target=5.0,
        stores=STORES,
        input_rows=rows,
        ibis_duckdb_s=round(ibis_s, 3),
        pandas_s=round(pandas_s, 3),
        ibis_duckdb_cpu_s=round(ibis_cpu, 3),
        pandas_cpu_s=round(pandas_cpu, 3),
        cpu_ratio=round(pandas_cpu / ibis_cpu, 2),
        first_run_s=round(ibis_first, 3),
        under_10s=ibis_s < 10,
    )
    report(
        "kpi_daily_parquet",
        rows / parquet_s,
        "rows/s",
        baseline=rows / pandas_s,
        target=5.0,
        stores=STORES,
        input_rows=rows,
        ibis_duckdb_parquet_s=round(parquet_s, 3),
        pandas_s=round(pandas_s, 3),
        ibis_duckdb_parquet_cpu_s=round(parquet_cpu, 3),
        pandas_cpu_s=round(pandas_cpu, 3),
        cpu_ratio=round(pandas_cpu / parquet_cpu, 2),
        first_run_s=round(arms["parquet"].first, 3),
    )

    report(
        "kpi_daily_pipeline",
        rows / pipeline_s,
        "rows/s",
        baseline=rows / pandas_s,
        target=5.0,
        stores=STORES,
        input_rows=rows,
        ibis_duckdb_pipeline_s=round(pipeline_s, 3),
        pandas_s=round(pandas_s, 3),
        ibis_duckdb_pipeline_cpu_s=round(pipeline_cpu, 3),
        pandas_cpu_s=round(pandas_cpu, 3),
        cpu_ratio=round(pandas_cpu / pipeline_cpu, 2),
        first_run_s=round(arms["pipeline"].first, 3),
        inputs_read_s=round(read_s, 3),
        inputs_read_cpu_s=round(read_cpu, 3),
        inputs_plain_scans=plain,
    )


if __name__ == "__main__":
    main()
