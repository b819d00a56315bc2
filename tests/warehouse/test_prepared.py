"""run_job: a KPI job's SQL compiled once per shape, the same rows as compiling each run."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any

import ibis
import pyarrow as pa
import pytest

from tenpo.jobs import store_daily, store_hourly, store_visits
from tenpo.jobs.timezones import OFFSETS_SCHEMA
from tenpo.warehouse import prepared
from tenpo.warehouse.schemas import (
    MART_STORE_VISITS,
    RAW_IOT_COUNTS,
    RAW_POS_TRANSACTIONS,
    RAW_VISITOR_EVENTS,
)
from tests.jobs.factories import DAY, NEXT_DAY, count_row, counts_table, pos_row, pos_table

KEYS = ("tenant_id", "store_id", "business_date")


@pytest.fixture
def con() -> Iterator[Any]:
    prepared.clear_cache()
    c = ibis.duckdb.connect()
    c.raw_sql("SET TimeZone = 'UTC'")
    yield c
    c.disconnect()
    prepared.clear_cache()


def _inputs(days: Sequence[date]) -> tuple[pa.Table, pa.Table]:
    pos, counts = [], []
    for i, day in enumerate(days):
        pos.append(pos_row("S1", f"a{i}", "sale", f"{100 + i}.00", f"{110 + i}", 1, day=day))
        pos.append(pos_row("S2", f"b{i}", "sale", "5.00", "5.50", 2 + i, day=day))
        counts.append(count_row("S1", "entrance", 3 + i, day=day))
    return pos_table(pos), counts_table(counts)


def _direct(con: Any, *tables: pa.Table, days: Sequence[date]) -> pa.Table:
    expr = store_daily(*[ibis.memtable(t) for t in tables], days=days).order_by(list(KEYS))
    return con.to_pyarrow(expr)


def _compiles(monkeypatch: pytest.MonkeyPatch, con: Any) -> list[int]:
    calls: list[int] = []
    compile_ = con.compile

    def counting(*args: Any, **kw: Any) -> str:
        calls.append(1)
        return compile_(*args, **kw)

    monkeypatch.setattr(con, "compile", counting)
    return calls


def test_one_template_serves_other_dates_with_the_same_rows(
    con: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _inputs([DAY, NEXT_DAY, DAY + timedelta(days=30)])
    calls = _compiles(monkeypatch, con)
    first = prepared.run_job(
        con, store_daily, *[ibis.memtable(t) for t in data], days=[DAY], order_by=KEYS
    )
    assert len(calls) == 1  # the template, for the sentinel dates
    for day in (NEXT_DAY, DAY + timedelta(days=1000)):
        calls.clear()
        got = prepared.run_job(
            con, store_daily, *[ibis.memtable(t) for t in data], days=[day], order_by=KEYS
        )
        monkeypatch.undo()
        want = _direct(con, *data, days=[day])
        calls = _compiles(monkeypatch, con)
        assert got.equals(want), day
        assert got.num_rows == (2 if day != DAY + timedelta(days=1000) else 0)
    assert first.equals(_direct(con, *data, days=[DAY]))
    assert [r["net_sales"] for r in first.to_pylist()] == [pytest.approx(100), 5]


def test_the_gaps_between_dates_are_part_of_the_shape(con: Any) -> None:
    data = _inputs([DAY, NEXT_DAY, DAY + timedelta(days=2), DAY + timedelta(days=5)])
    tables = [ibis.memtable(t) for t in data]
    for days in (
        [NEXT_DAY, DAY, NEXT_DAY],  # order and repeats do not matter
        [DAY + timedelta(days=2), NEXT_DAY],  # the same gap: the same template
        [DAY, DAY + timedelta(days=5)],
    ):
        got = prepared.run_job(con, store_daily, *tables, days=days, order_by=KEYS)
        assert got.equals(_direct(con, *data, days=days)), days
        assert got.num_rows == 4
    assert len(prepared._cache) == 2  # gaps (0, 1) and (0, 5)


def test_inputs_that_are_not_arrow_bind_as_views_and_leave_nothing_behind(con: Any) -> None:
    pos, counts = _inputs([DAY])
    con.create_table("pos_rows", pos)
    t = con.table("pos_rows")
    sales = t.filter(t.kind == "sale")  # an expression, not a physical table
    got = prepared.run_job(
        con, store_daily, sales, ibis.memtable(counts), days=[DAY], order_by=KEYS
    )
    assert got.equals(_direct(con, pos, counts, days=[DAY]))
    left = con.raw_sql("SELECT table_name FROM information_schema.tables").fetchall()
    assert not [n for (n,) in left if n.startswith("_tenpo_job_input")]


def test_constant_dates_stay_and_dates_written_otherwise_are_not_templated(con: Any) -> None:
    def since_launch(pos: ibis.Table, *, days: Sequence[date]) -> ibis.Table:
        launch = date(2026, 11, 1)  # a constant, not derived from days: never shifted
        kept = pos.filter(pos.business_date.isin(sorted(days)) & (pos.business_date > launch))
        return kept.group_by("store_id").aggregate(n=kept.count())

    def by_text(pos: ibis.Table, *, days: Sequence[date]) -> ibis.Table:
        # The dates as strings: nothing the template could shift, so the check refuses it.
        kept = pos.filter(pos.business_date.cast("string").isin([str(d) for d in days]))
        return kept.group_by("store_id").aggregate(n=kept.count())

    pos, _ = _inputs([DAY - timedelta(days=1), DAY, NEXT_DAY])
    for job in (since_launch, by_text):
        for day in (DAY - timedelta(days=1), DAY, NEXT_DAY):
            got = prepared.run_job(con, job, ibis.memtable(pos), days=[day], order_by=["store_id"])
            want = con.to_pyarrow(job(ibis.memtable(pos), days=[day]).order_by("store_id"))
            assert got.equals(want), (job.__name__, day)
            n = 0 if job is since_launch and day < DAY else 1
            assert got.to_pylist() == (
                [{"store_id": "S1", "n": n}, {"store_id": "S2", "n": n}] if n else []
            )
    assert [t is not None for t in prepared._cache.values()] == [True, False]


@pytest.mark.parametrize("job", ["store_daily", "store_hourly", "store_visits"])
def test_each_kpi_jobs_rendered_template_is_the_sql_of_the_real_dates(con: Any, job: str) -> None:
    """The contract a templated job keeps: its SQL depends on ``days`` through date literals
    only, so shifting the sentinel template gives exactly the SQL compiled for the dates."""
    t = {
        name: ibis.table(ibis.schema(schema), name=name)
        for name, schema in (
            ("pos", RAW_POS_TRANSACTIONS),
            ("counts", RAW_IOT_COUNTS),
            ("visits", MART_STORE_VISITS),
            ("events", RAW_VISITOR_EVENTS),
            ("offsets", OFFSETS_SCHEMA),
        )
    }
    fn, args, params = {
        "store_daily": (store_daily, (t["pos"], t["counts"], t["visits"]), {"days": [DAY]}),
        "store_hourly": (
            store_hourly,
            (t["pos"], t["counts"], t["visits"]),
            {"offsets": t["offsets"]},
        ),
        "store_visits": (store_visits, (t["events"],), {"offsets": t["offsets"], "days": [DAY]}),
    }[job]
    if "days" in params:  # several dates with gaps: every literal of the range shifts
        params = {**params, "days": [NEXT_DAY, DAY, DAY + timedelta(days=40)]}
    wanted = sorted(params["days"]) if "days" in params else None
    template = prepared._compile(con, fn, args, params, KEYS, wanted)
    assert template is not None, job
    real = con.compile(prepared._build(fn, args, params, KEYS, wanted))
    rendered = (
        template.sql
        if wanted is None
        else prepared._shift(template.sql, wanted[0] - prepared._SENTINEL)
    )
    assert rendered == real, job
    assert wanted is None or "MAKE_DATE(2026, 11, 2)" in rendered


def test_the_cache_keeps_the_most_recently_used_shapes(
    con: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def per_store(pos: ibis.Table, *, days: Sequence[date]) -> ibis.Table:
        kept = pos.filter(pos.business_date.isin(sorted(days)))
        return kept.group_by("store_id").aggregate(n=kept.count())

    monkeypatch.setattr(prepared, "_CACHE_SIZE", 2)
    pos = ibis.memtable(_inputs([DAY, NEXT_DAY, DAY + timedelta(days=2)])[0])
    one, two, three = [DAY], [DAY, NEXT_DAY], [DAY, DAY + timedelta(days=2)]
    for days in (one, two, one, three):  # ``one`` used again, so ``two`` is the oldest
        got = prepared.run_job(con, per_store, pos, days=days, order_by=["store_id"])
        assert got.to_pylist() == [{"store_id": s, "n": len(days)} for s in ("S1", "S2")]
    assert [key[4] for key in prepared._cache] == [(0,), (0, 2)]


def test_closures_of_one_factory_never_share_compiled_sql(con: Any) -> None:
    """Two jobs from one factory have one name but capture different values (here a tenant):
    each must run its own SQL, never the other's cached template."""

    def tenant_job(tenant: str) -> Any:
        def job(t: ibis.Table) -> ibis.Table:
            return t.filter(t.tenant_id == tenant).select("tenant_id", "v")

        return job

    data = pa.table({"tenant_id": ["A", "B"], "v": [1, 2]})
    a = prepared.run_job(con, tenant_job("A"), ibis.memtable(data))
    b = prepared.run_job(con, tenant_job("B"), ibis.memtable(data))
    assert a.to_pylist() == [{"tenant_id": "A", "v": 1}]
    assert b.to_pylist() == [{"tenant_id": "B", "v": 2}]


def _cold(monkeypatch: pytest.MonkeyPatch, con: Any) -> list[int]:
    """A fresh process as far as run_job can tell: nothing in memory, compiles counted."""
    prepared.clear_cache()
    monkeypatch.undo()
    return _compiles(monkeypatch, con)


def test_a_stored_template_serves_a_later_process_without_compiling(
    con: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    store = prepared.TemplateStore(tmp_path / "job_sql")
    data = _inputs([DAY, NEXT_DAY])
    tables = [ibis.memtable(t) for t in data]
    calls = _cold(monkeypatch, con)
    first = prepared.run_job(con, store_daily, *tables, days=[DAY], order_by=KEYS, store=store)
    assert len(calls) == 1 and len(list((tmp_path / "job_sql").glob("*.json"))) == 1
    calls = _cold(monkeypatch, con)
    again = prepared.run_job(con, store_daily, *tables, days=[NEXT_DAY], order_by=KEYS, store=store)
    assert calls == []  # rendered from the file
    monkeypatch.undo()
    assert first.equals(_direct(con, *data, days=[DAY]))
    assert again.equals(_direct(con, *data, days=[NEXT_DAY]))
    assert again.schema == first.schema


def test_other_arguments_or_code_never_share_a_stored_template(
    con: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    store = prepared.TemplateStore(tmp_path)
    visits = pa.table(
        {
            "tenant_id": ["t1", "t1"],
            "store_id": ["S1", "S1"],
            "business_date": [DAY - timedelta(days=40), DAY],
            "person_id": ["p1", "p1"],
            "entry_ts": pa.array([None, None], pa.timestamp("us", tz="UTC")),
            "exit_ts": pa.array([None, None], pa.timestamp("us", tz="UTC")),
            "dwell_s": pa.array([None, None], pa.int64()),
            "entry_hour": pa.array([10, 10], pa.int32()),
            "camera_id": ["c1", "c1"],
        },
        schema=MART_STORE_VISITS,
    )
    pos, counts = _inputs([DAY])
    tables = [ibis.memtable(t) for t in (pos, counts, visits)]

    def repeats(window: int) -> list[object]:
        prepared.clear_cache()
        rows = prepared.run_job(
            con, store_daily, *tables, days=[DAY], repeat_window_days=window, store=store
        )
        return [r["repeat_visitors"] for r in rows.to_pylist() if r["store_id"] == "S1"]

    assert repeats(180) == [1]
    assert repeats(30) == [0]  # its own template: the earlier visit is outside the window
    assert repeats(180) == [1]
    assert len(list(tmp_path.glob("*.json"))) == 2
    monkeypatch.setattr(prepared, "_code_version", lambda: "other source")
    calls = _compiles(monkeypatch, con)
    assert repeats(180) == [1] and len(calls) == 1  # changed code: compiled anew
    assert len(list(tmp_path.glob("*.json"))) == 3


def test_only_tenpo_module_jobs_are_stored_and_bad_files_are_ignored(
    con: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    store = prepared.TemplateStore(tmp_path)
    pos = ibis.memtable(_inputs([DAY])[0])

    def per_store(t: ibis.Table) -> ibis.Table:  # a test's job: kept in memory only
        return t.group_by("store_id").aggregate(n=t.count())

    tenant = "t1"

    def closure(t: ibis.Table) -> ibis.Table:
        kept = t.filter(t.tenant_id == tenant)
        return kept.group_by("store_id").aggregate(n=kept.count())

    for job in (per_store, closure):
        assert prepared.run_job(con, job, pos, order_by=["store_id"], store=store).num_rows == 2
    assert not list(tmp_path.iterdir())
    # A tenpo job with an argument that has no stable text stays out of the store too.
    assert (
        prepared._stored_key(("c", store_daily, (), (("x", ("value", object())),), None, ()))
        is None
    )
    assert prepared._stored_key(("c", store_daily, (), (), None, ())) is not None
    assert prepared._stored_key(("c", per_store, (), (), None, ())) is None

    pos2, counts = _inputs([DAY])
    tables = [ibis.memtable(t) for t in (pos2, counts)]
    prepared.clear_cache()
    want = prepared.run_job(con, store_daily, *tables, days=[DAY], order_by=KEYS, store=store)
    (path,) = tmp_path.glob("*.json")
    for bad in ("{not json", '{"key": "another key", "sql": "SELECT 1", "schema": ""}'):
        path.write_text(bad)
        calls = _cold(monkeypatch, con)
        got = prepared.run_job(con, store_daily, *tables, days=[DAY], order_by=KEYS, store=store)
        assert len(calls) == 1 and got.equals(want)  # compiled and written anew
        assert prepared.TemplateStore(tmp_path).load(json.loads(path.read_text())["key"])
