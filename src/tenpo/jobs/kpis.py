"""Store KPI marts as pure Ibis functions (ARCHITECTURE.md, "KPI definitions").

Each function takes Ibis tables in the raw-table contract and returns an expression in a mart's
schema; it does no I/O and uses no engine-specific SQL, so the same code runs on DuckDB, Spark
or BigQuery. The building blocks are grouped by a list of keys so the hourly mart can reuse
them with an hour key.

Choices the definitions leave open:

* ``passersby`` is Σ (``count_in`` + ``count_out``) at ``passby`` lines. A passby counter
  faces the street: each person walking past crosses its line once, in one direction or the
  other, so both directions are people passing by (the simulator's ground truth counts the
  same way). ``visitors`` is Σ ``count_in`` at ``entrance`` lines.
* ``visitors`` come from the people counter when the store-date has entrance counts, else
  from the camera's customer entries (``mart_store_visits``; ``visitors_source`` says which).
* PersonID KPIs come from ``mart_store_visits`` (staff already excluded): ``unique_visitors``
  are distinct persons of the store-date; ``repeat_visitors`` those with a visit to any store
  of the tenant on an earlier date within the repeat window (so the visits input must reach
  back that far); dwell median/mean over visits with an exit (exact median, the mean of the two
  middle values for an even count).
* Data quality: ``has_pos`` / ``has_counter`` / ``has_video`` say which sources had rows;
  ``counter_complete`` is false when an entrance counter's intervals (fixed length per
  device) leave a gap between its first and last report; ``video_complete`` is false when
  an entry has no exit.
* A metric whose source sent nothing for the store-date is null, not zero: a store without a
  people counter has unknown visitors, a counter-only store-date has unknown sales. The
  ``has_pos`` / ``has_counter`` flags say which sources had rows (a POS day of voids only
  counts as present, with zero sales).
* Every ratio is null when its denominator is zero or null, never 0 or infinity.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import ibis

from tenpo.jobs._common import (
    DAILY_KEYS,
    DEFAULT_UTC_OFFSET_S,
    cast_to,
    ibis_type,
    left_join_on,
    local_hour,
    merge_partials,
    money_zero,
    ratio,
    require,
    with_offsets,
)
from tenpo.warehouse.schemas import MART_STORE_DAILY, MART_STORE_HOURLY

__all__ = [
    "COUNT_COLUMNS",
    "DAILY_KEYS",
    "HOURLY_KEYS",
    "POS_COLUMNS",
    "VISIT_COLUMNS",
    "store_daily",
    "store_hourly",
]

# The columns each job reads: anything else in the inputs is ignored.
POS_COLUMNS = (
    "tenant_id",
    "store_id",
    "business_date",
    "kind",
    "total_excl_tax",
    "total_incl_tax",
    "item_count",
)
COUNT_COLUMNS = ("tenant_id", "store_id", "business_date", "line", "count_in", "count_out")
VISIT_COLUMNS = ("tenant_id", "store_id", "business_date", "person_id", "exit_ts", "dwell_s")

HOURLY_KEYS = (*DAILY_KEYS, "hour", "utc_offset_s")

_COUNTED_KINDS = ("sale", "return")  # voids count nowhere
_ENTRANCE, _PASSBY = "entrance", "passby"


def store_daily(
    pos_transactions: ibis.Table,
    iot_counts: ibis.Table,
    visits: ibis.Table | None = None,
    *,
    days: Sequence[date] | None = None,
    repeat_window_days: int = 180,
) -> ibis.Table:
    """``mart_store_daily`` rows, one per (tenant_id, store_id, business_date) with any data.

    Inputs follow ``raw_pos_transactions`` / ``raw_iot_counts`` (deduplicated) and
    ``mart_store_visits``, which must reach ``repeat_window_days`` before the first date for
    repeat visitors. ``days`` restricts the output to those dates. ``BadInput`` names any
    missing column.
    """
    require(pos_transactions, POS_COLUMNS, "pos_transactions")
    require(
        iot_counts, (*COUNT_COLUMNS, "interval_start", "interval_end", "device_id"), "iot_counts"
    )
    pos, counts = pos_transactions, iot_counts
    if days is not None:
        wanted = sorted(set(days))
        pos = pos.filter(pos.business_date.isin(wanted)) if wanted else pos.limit(0)
        counts = counts.filter(counts.business_date.isin(wanted)) if wanted else counts.limit(0)
    parts = [_pos_aggregates(pos, DAILY_KEYS), _daily_counts(counts)]
    if visits is not None:
        require(visits, VISIT_COLUMNS, "visits")
        current, history = visits, visits
        if days is not None:
            current = (
                visits.filter(visits.business_date.isin(wanted)) if wanted else visits.limit(0)
            )
            if wanted:  # only earlier dates within the window can make a repeat visit
                earliest = min(wanted) - timedelta(days=repeat_window_days)
                history = visits.filter(
                    visits.business_date.between(earliest, max(wanted) - timedelta(days=1))
                )
        parts.extend(_visit_aggregates(current, history, repeat_window_days))
    m = merge_partials(parts, DAILY_KEYS)
    # Every output column in one SELECT over the merged row: one query level to compile.
    cols: dict[str, ibis.Value] = {}
    if visits is None:
        cols.update(
            unique_visitors=ibis.null("int64"),
            repeat_visitors=ibis.null("int64"),
            dwell_time_median_s=ibis.null("float64"),
            dwell_time_mean_s=ibis.null("float64"),
            open_visits=ibis.null("int64"),
            has_video=ibis.literal(False),
            video_complete=ibis.null("boolean"),
        )
        video_entries: ibis.Value = ibis.null("int64")
    else:  # counted over the persons of a store-date with video: 0 there, null elsewhere
        with_video = m.has_video.coalesce(False)
        cols.update(
            unique_visitors=ibis.ifelse(
                with_video, m.unique_visitors.coalesce(0), ibis.null("int64")
            ),
            repeat_visitors=ibis.ifelse(
                with_video, m.repeat_visitors.coalesce(0), ibis.null("int64")
            ),
            has_video=with_video,
            video_complete=ibis.ifelse(
                m.open_visits.isnull(), ibis.null("boolean"), m.open_visits == 0
            ),
        )
        video_entries = m.video_entries
    visitors = m.counter_visitors.coalesce(video_entries)
    cols.update(
        has_pos=m.has_pos.coalesce(False),
        has_counter=m.has_counter.coalesce(False),
        visitors=visitors,
        visitors_source=ibis.cases(
            (m.counter_visitors.notnull(), "counter"),
            (video_entries.notnull(), "video"),
            else_=ibis.null("string"),
        ),
        repeat_rate=ratio(cols["repeat_visitors"], cols["unique_visitors"]),
        **_ratios(m.net_sales, m.transactions, m.units, visitors, m.passersby),
    )
    return m.select(
        *[
            (cols[f.name] if f.name in cols else m[f.name]).cast(ibis_type(f.type)).name(f.name)
            for f in MART_STORE_DAILY
        ]
    )


def store_hourly(
    pos_transactions: ibis.Table,
    iot_counts: ibis.Table,
    visits: ibis.Table | None = None,
    *,
    offsets: ibis.Table | None = None,
    default_utc_offset_s: int = DEFAULT_UTC_OFFSET_S,
) -> ibis.Table:
    """``mart_store_hourly`` rows: one per store, business date and local hour with any data.

    A row is a local clock hour *and* the UTC offset in force (``hour``, ``utc_offset_s``):
    receipts (``ts``), counter intervals (``interval_start``) and visits (``entry_ts``) fall in
    the local hour of their own instant, converted with the offset ``offsets`` gives for that
    instant (``tenpo.jobs.timezones``; ``default_utc_offset_s`` for stores it lacks). So the
    hour repeated when clocks go back appears twice (once per offset) and the hour skipped
    when they go forward not at all. Visitors follow the daily rule per store-date (counter
    if the date has one, else video), so the hours of a store-date add up to its daily row.
    """
    require(pos_transactions, (*POS_COLUMNS, "ts"), "pos_transactions")
    require(iot_counts, (*COUNT_COLUMNS, "interval_start"), "iot_counts")
    pos = _local_hour_of(pos_transactions, "ts", offsets, default_utc_offset_s)
    counts = _local_hour_of(iot_counts, "interval_start", offsets, default_utc_offset_s)
    parts = [_pos_aggregates(pos, HOURLY_KEYS), _count_aggregates(counts, HOURLY_KEYS)]
    if visits is not None:
        require(visits, (*DAILY_KEYS, "entry_ts"), "visits")
        v = _local_hour_of(visits, "entry_ts", offsets, default_utc_offset_s)
        parts.append(v.group_by(list(HOURLY_KEYS)).aggregate(video_entries=v.count()))
    joined = merge_partials(parts, HOURLY_KEYS)
    if visits is None:
        joined = joined.mutate(video_entries=ibis.null("int64"))
    # Which source gives visitors is decided per store-date, as in the daily mart.
    day_counter = (
        iot_counts.filter(iot_counts.line == _ENTRANCE)
        .select(*DAILY_KEYS)
        .distinct()
        .mutate(_day_counter=ibis.literal(True))
    )
    joined = left_join_on(joined, day_counter, DAILY_KEYS)
    from_counter = joined._day_counter.coalesce(False)
    joined = joined.mutate(
        has_pos=joined.has_pos.coalesce(False),
        has_counter=joined.has_counter.coalesce(False),
        visitors=ibis.ifelse(
            from_counter, joined.counter_visitors.coalesce(0), joined.video_entries
        ),
        visitors_source=ibis.cases(
            (from_counter, "counter"),
            (joined.video_entries.notnull(), "video"),
            else_=ibis.null("string"),
        ),
    )
    return _with_ratios(joined).select(*cast_to(MART_STORE_HOURLY))


def _local_hour_of(
    t: ibis.Table, ts: str, offsets: ibis.Table | None, default_offset_s: int
) -> ibis.Table:
    """``t`` with ``hour`` and ``utc_offset_s``: the local hour of column ``ts`` and its offset."""
    t = with_offsets(t, offsets, default_offset_s, ts)
    return t.mutate(hour=local_hour(t[ts], t._offset_s), utc_offset_s=t._offset_s.cast("int32"))


def _pos_aggregates(t: ibis.Table, keys: Sequence[str]) -> ibis.Table:
    """Sales, receipts and units per group; sums over sale and return rows only.

    The receipts are grouped once by ``keys`` and ``kind`` with plain sums (no per-row
    filter); the kinds are folded on those few rows.
    """
    by_kind = t.group_by([*keys, "kind"]).aggregate(
        _excl=t.total_excl_tax.sum(),
        _incl=t.total_incl_tax.sum(),
        _n=t.count(),
        _units=t.item_count.cast("int64").sum(),
    )
    k = by_kind
    counted = k.kind.isin(_COUNTED_KINDS)
    return k.group_by(list(keys)).aggregate(
        net_sales=k._excl.sum(where=counted).coalesce(money_zero()),
        net_sales_incl_tax=k._incl.sum(where=counted).coalesce(money_zero()),
        transactions=(
            k._n.sum(where=k.kind == "sale").coalesce(0)
            - k._n.sum(where=k.kind == "return").coalesce(0)
        ),
        units=k._units.sum(where=counted).coalesce(0),
        has_pos=ibis.literal(True),
    )


def _count_aggregates(t: ibis.Table, keys: Sequence[str]) -> ibis.Table:
    """Visitors (entrance) and passers-by (passby) per group; null when that line is absent."""
    return t.group_by(list(keys)).aggregate(
        counter_visitors=t.count_in.cast("int64").sum(where=t.line == _ENTRANCE),
        passersby=(t.count_in.cast("int64") + t.count_out.cast("int64")).sum(
            where=t.line == _PASSBY
        ),
        has_counter=ibis.literal(True),
    )


def _daily_counts(t: ibis.Table) -> ibis.Table:
    """Visitors, passers-by and counter completeness per store-date, in one pass over the counts.

    The intervals are first summed per device, so the big table is grouped once;
    everything else is computed from those few rows. A device reports fixed-length intervals,
    so an entrance counter is complete when its intervals (count × the first one's length)
    cover the span from its first start to its last end; only the per-device aggregates are
    converted to epoch seconds. ``counter_complete`` is null without an entrance counter.
    """
    # Grouped once by device and line with plain aggregates (no per-row filter); the lines
    # are told apart on those few rows.
    per_line = t.group_by([*DAILY_KEYS, "device_id", "line"]).aggregate(
        _in=t.count_in.cast("int64").sum(),
        _both=(t.count_in.cast("int64") + t.count_out.cast("int64")).sum(),
        _n=t.count(), _first=t.interval_start.min(),
        _first_end=t.interval_end.min(), _last_end=t.interval_end.max(),
    )  # fmt: skip
    p = per_line
    entrance, passby = p.line == _ENTRANCE, p.line == _PASSBY
    per_device = p.group_by([*DAILY_KEYS, "device_id"]).aggregate(
        _in=p._in.sum(where=entrance), _both=p._both.sum(where=passby),
        _n=p._n.sum(where=entrance).coalesce(0), _first=p._first.min(where=entrance),
        _first_end=p._first_end.min(where=entrance), _last_end=p._last_end.max(where=entrance),
    )  # fmt: skip
    d = per_device
    first = d._first.epoch_seconds().cast("int64")
    length = d._first_end.epoch_seconds().cast("int64") - first
    span = d._last_end.epoch_seconds().cast("int64") - first
    gap = ibis.cases(  # null for a device without entrance rows: it says nothing
        (d._n == 0, ibis.null("int64")), (d._n * length < span, 1), else_=0
    )
    return d.group_by(list(DAILY_KEYS)).aggregate(
        counter_visitors=d._in.sum(),
        passersby=d._both.sum(),
        has_counter=ibis.literal(True),
        counter_complete=gap.sum() == 0,
    )


def _visit_aggregates(
    current: ibis.Table, history: ibis.Table, repeat_window_days: int
) -> list[ibis.Table]:
    """Partials per store-date of ``current``: entries, open visits, dwell mean and median in
    one pass; unique visitors; repeat visitors (absent where there are none)."""
    # Exact median (the mean of the two middle values for an even count): QUANTILE_CONT on
    # DuckDB, PERCENTILE on Spark, a sorted ARRAY_AGG on BigQuery (tenpo.warehouse.bigquery_ibis
    # adds the rule Ibis lacks). A sorted collect spelled out here cost DuckDB three times as
    # much (ARRAY_AGG + LIST_SORT of every dwell: ~9 % of the daily job); a window over all
    # visits (partitioned by three string keys) cost more than the whole POS aggregate.
    dwell = current.dwell_s
    basic = current.group_by(list(DAILY_KEYS)).aggregate(
        video_entries=current.count(),
        open_visits=current.count(where=current.exit_ts.isnull()),
        dwell_time_mean_s=dwell.mean(),
        has_video=ibis.literal(True),
        dwell_time_median_s=dwell.median(),
    )
    # Unique and repeat visitors from one set of distinct persons per store-date. A repeat
    # visitor has a visit of the same person to any store of the tenant on an earlier date
    # within the window: a semi join on (tenant, person) with the date range as a residual
    # condition, no window or de-duplication over the whole history.
    persons = current.filter(current.person_id.notnull()).select(*DAILY_KEYS, "person_id")
    persons = persons.distinct()
    unique = persons.group_by(list(DAILY_KEYS)).aggregate(unique_visitors=persons.count())
    seen = history.select(
        _h_tenant=history.tenant_id, _h_person=history.person_id, _h_date=history.business_date
    )
    repeaters = persons.semi_join(
        seen,
        [
            persons.tenant_id == seen._h_tenant,
            persons.person_id == seen._h_person,
            seen._h_date < persons.business_date,
            seen._h_date >= persons.business_date - ibis.interval(days=repeat_window_days),
        ],
    )
    repeat = repeaters.group_by(list(DAILY_KEYS)).aggregate(repeat_visitors=repeaters.count())
    return [basic, unique, repeat]


def _ratios(
    net_sales: ibis.Value,
    transactions: ibis.Value,
    units: ibis.Value,
    visitors: ibis.Value,
    passersby: ibis.Value,
) -> dict[str, ibis.Value]:
    return {
        "atv": ratio(net_sales, transactions),
        "upt": ratio(units, transactions),
        "capture_rate": ratio(visitors, passersby),
        "conversion_rate": ratio(transactions, visitors),
        "sales_per_visitor": ratio(net_sales, visitors),
    }


def _with_ratios(t: ibis.Table) -> ibis.Table:
    return t.mutate(**_ratios(t.net_sales, t.transactions, t.units, t.visitors, t.passersby))
