"""Arrow schemas of the raw tables: the DWH contract of ARCHITECTURE.md.

Every Pre-ETL produces rows in exactly these schemas and every job reads them. Money is
``decimal128(18, 2)`` (yen, with room for the fractional excl.-tax prices vendor B sends);
instants are UTC microseconds; ``business_date`` is the store's local date and is also the
partition key of the table's folder. ``source_object_id`` names the landing object a row came
from, which makes every load traceable and idempotent.
"""

from __future__ import annotations

import pyarrow as pa

MONEY = pa.decimal128(18, 2)
RATE = pa.decimal128(4, 2)
TS = pa.timestamp("us", tz="UTC")

RAW_POS_TRANSACTIONS = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("register_id", pa.string()),
        ("transaction_id", pa.string()),
        ("business_date", pa.date32()),
        ("ts", TS),
        ("ts_local", pa.timestamp("us")),
        ("kind", pa.string()),  # sale | return | void
        ("total_excl_tax", MONEY),
        ("total_tax", MONEY),
        ("total_incl_tax", MONEY),
        ("item_count", pa.int32()),
        ("vendor", pa.string()),
        ("source_object_id", pa.string()),
        # When the object holding this version arrived (event.registered_at): the latest
        # received version of a (tenant, store, transaction) replaces earlier ones on read.
        ("received_at", TS),
    ]
)

RAW_POS_LINES = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("transaction_id", pa.string()),
        ("business_date", pa.date32()),
        ("line_no", pa.int32()),
        ("sku", pa.string()),
        ("name", pa.string()),
        ("quantity", pa.int32()),
        ("unit_price_excl_tax", MONEY),
        ("amount_excl_tax", MONEY),
        ("tax_rate", RATE),  # 0.10 | 0.08 | 0.00
        ("tax", MONEY),
        ("amount_incl_tax", MONEY),
        ("source_object_id", pa.string()),
        ("received_at", TS),  # of the transaction version the line belongs to
    ]
)

RAW_IOT_COUNTS = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("device_id", pa.string()),
        ("line", pa.string()),  # entrance | passby | zone name
        ("business_date", pa.date32()),
        ("interval_start", TS),
        ("interval_end", TS),
        ("count_in", pa.int32()),
        ("count_out", pa.int32()),
        ("seq", pa.int64()),
        ("source_object_id", pa.string()),
    ]
)

RAW_IOT_TRACKS = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("device_id", pa.string()),
        ("track_id", pa.string()),
        ("business_date", pa.date32()),
        ("ts", TS),
        ("x", pa.float64()),
        ("y", pa.float64()),
        ("zone", pa.string()),
        ("seq", pa.int64()),
        ("source_object_id", pa.string()),
    ]
)

RAW_VISITOR_EVENTS = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("camera_id", pa.string()),
        ("person_id", pa.string()),
        ("event", pa.string()),  # entry | exit
        ("business_date", pa.date32()),
        ("ts", TS),
        ("quality", pa.float64()),
        ("track_id", pa.string()),
        ("source_object_id", pa.string()),
    ]
)

RAW_DEVICE_HEARTBEATS = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("device_id", pa.string()),
        ("business_date", pa.date32()),
        ("ts", TS),
        ("status", pa.string()),
        ("firmware", pa.string()),
        ("battery", pa.float64()),
        ("seq", pa.int64()),
        ("source_object_id", pa.string()),
        # When tenpo received the heartbeat (MQTT message or HTTP upload): clock skew = ts - this.
        ("received_at", TS),
    ]
)

RAW_TABLES: dict[str, pa.Schema] = {
    "raw_pos_transactions": RAW_POS_TRANSACTIONS,
    "raw_pos_lines": RAW_POS_LINES,
    "raw_iot_counts": RAW_IOT_COUNTS,
    "raw_iot_tracks": RAW_IOT_TRACKS,
    "raw_visitor_events": RAW_VISITOR_EVENTS,
    "raw_device_heartbeats": RAW_DEVICE_HEARTBEATS,
}

# Natural keys: a row whose key was already loaded is a duplicate, whatever object it came in.
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "raw_pos_transactions": ("tenant_id", "store_id", "transaction_id"),
    "raw_pos_lines": ("tenant_id", "store_id", "transaction_id", "line_no"),
    "raw_iot_counts": ("tenant_id", "device_id", "line", "interval_start"),
    "raw_iot_tracks": ("tenant_id", "device_id", "track_id", "ts"),
    "raw_visitor_events": ("tenant_id", "camera_id", "track_id", "event", "ts"),
    "raw_device_heartbeats": ("tenant_id", "device_id", "ts"),
}

# Device events carry a per-device sequence number (FORMATS.md): an event whose
# (device_id, seq) was loaded before is a duplicate even when its content differs, so on read
# only the rows of the first object (smallest source_object_id) holding that seq are kept.
EVENT_KEYS: dict[str, tuple[str, ...]] = {
    "raw_iot_counts": ("tenant_id", "device_id", "seq"),
    "raw_iot_tracks": ("tenant_id", "device_id", "seq"),
    "raw_device_heartbeats": ("tenant_id", "device_id", "seq"),
}

# --- marts -------------------------------------------------------------------------------
# KPI columns follow ARCHITECTURE.md's names. Ratios are float64 (null when the denominator is
# zero); money stays decimal. ``has_*`` flags say which sources had data for the row's date.
_SALES_TRAFFIC_KPIS: list[tuple[str, pa.DataType]] = [
    ("net_sales", MONEY),
    ("net_sales_incl_tax", MONEY),
    ("transactions", pa.int64()),
    ("units", pa.int64()),
    ("atv", pa.float64()),
    ("upt", pa.float64()),
    ("visitors", pa.int64()),
    ("passersby", pa.int64()),
    ("capture_rate", pa.float64()),
    ("conversion_rate", pa.float64()),
    ("sales_per_visitor", pa.float64()),
    ("has_pos", pa.bool_()),
    ("has_counter", pa.bool_()),
]
"""The sales-tree KPIs shared, in this order, by the daily and hourly marts."""
SALES_TRAFFIC_KPIS: tuple[tuple[str, pa.DataType], ...] = tuple(_SALES_TRAFFIC_KPIS)
"""The same, public: readers derive their column lists from it."""

VIDEO_KPIS: tuple[tuple[str, pa.DataType], ...] = (
    ("unique_visitors", pa.int64()),
    ("repeat_visitors", pa.int64()),
    ("repeat_rate", pa.float64()),
    ("dwell_time_median_s", pa.float64()),
    ("dwell_time_mean_s", pa.float64()),
    ("open_visits", pa.int64()),  # entries without an exit (no dwell)
)
"""PersonID KPIs of the daily mart only (video; null at a store-date without visitor events),
staff excluded."""
DAILY_QUALITY: tuple[tuple[str, pa.DataType], ...] = (
    ("visitors_source", pa.string()),  # where `visitors` came from: counter | video
    ("has_video", pa.bool_()),
    ("counter_complete", pa.bool_()),  # every entrance counter reported without a gap
    ("video_complete", pa.bool_()),  # every entry was paired with an exit
)
"""Data-quality columns of the daily mart after its KPIs (the hourly mart has
``visitors_source`` only)."""
DAILY_KPIS: tuple[tuple[str, pa.DataType], ...] = (
    *SALES_TRAFFIC_KPIS,
    *VIDEO_KPIS,
    *DAILY_QUALITY,
)
"""Every column of ``mart_store_daily`` after its key, in its order: readers and the API's
day rows derive their column lists from it."""

MART_STORE_DAILY = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("business_date", pa.date32()),
        *DAILY_KPIS,
    ]
)

# One row per store, business date, local hour (0-23, the store's timezone) and UTC offset in
# force: on a fall-back date the repeated hour has a row per offset, the skipped hour of a
# spring-forward date none (tenpo.jobs.kpis.store_hourly). Visitors come
# from the counter when the store-date has one, else from video entries, as in the daily mart,
# so the hours of a store-date add up to its daily row.
MART_STORE_HOURLY = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("business_date", pa.date32()),
        ("hour", pa.int32()),
        ("utc_offset_s", pa.int32()),  # offset in force: the repeated hour has two rows
        *_SALES_TRAFFIC_KPIS,
        ("visitors_source", pa.string()),
    ]
)

# One row per customer visit (PersonID entry, paired with the next exit of that person at that
# store on that date). Staff are excluded. An entry without an exit has null exit_ts/dwell_s.
MART_STORE_VISITS = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("business_date", pa.date32()),
        ("person_id", pa.string()),
        ("entry_ts", TS),
        ("exit_ts", TS),
        ("dwell_s", pa.int64()),
        ("entry_hour", pa.int32()),  # local hour of the entry
        ("camera_id", pa.string()),
    ]
)

MART_TABLES: dict[str, pa.Schema] = {
    "mart_store_daily": MART_STORE_DAILY,
    "mart_store_hourly": MART_STORE_HOURLY,
    "mart_store_visits": MART_STORE_VISITS,
}

# Per device and business date (tenpo.iot.health); ``flags`` is a sorted, comma-separated list.
# Expected intervals follow the device's schedule (store opening hours or 24 h, its interval).
MART_DEVICE_HEALTH = pa.schema(
    [
        ("tenant_id", pa.string()),
        ("store_id", pa.string()),
        ("device_id", pa.string()),
        ("business_date", pa.date32()),
        ("last_seen", TS),
        ("interval_s", pa.int64()),
        ("intervals_expected", pa.int64()),
        ("intervals_received", pa.int64()),
        ("intervals_missing", pa.int64()),
        ("incomplete_hours", pa.string()),  # local hours with a missing slot, "HH:00±hh:mm,..."
        ("heartbeats", pa.int64()),
        ("clock_skew_s", pa.float64()),
        ("battery_min", pa.float64()),
        ("last_status", pa.string()),
        ("flags", pa.string()),
    ]
)
MART_TABLES["mart_device_health"] = MART_DEVICE_HEALTH
