"""IoT Pre-ETL: sample, each event type, duplicates and every rejected event."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from tenpo.core.preetl import ParseResult
from tenpo.iot import IotPreEtl, _fast
from tenpo.warehouse.schemas import RAW_TABLES
from tests.data.helpers import DATA, directory, event

EVENT = event("iot")


@pytest.fixture(autouse=True)
def _columns_for_small_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The column-wise path on these small bodies too (parse compares it with the other)."""
    monkeypatch.setattr(_fast, "MIN_EVENTS", 1)


def parse(body: Any) -> ParseResult:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    result = IotPreEtl().parse(EVENT, data, directory())
    for name, table in result.tables.items():
        assert table.schema == RAW_TABLES[name]
    slow = IotPreEtl(_fast=False).parse(EVENT, data, directory())  # both paths agree
    assert {n: t.to_pylist() for n, t in result.tables.items()} == {
        n: t.to_pylist() for n, t in slow.tables.items()
    }
    assert [(r.table, r.reason, r.record, r.line, r.replayable) for r in result.rejects] == [
        (r.table, r.reason, r.record, r.line, r.replayable) for r in slow.rejects
    ]
    return result


def count(**changes: Any) -> dict[str, Any]:
    ev = {
        "v": 1, "device_id": "pc-001", "seq": 10, "type": "count", "line": "entrance",
        "interval_start": "2026-10-04T23:59:00+09:00", "interval_end": "2026-10-05T00:00:00+09:00",
        "in": 5, "out": 3,
    }  # fmt: skip
    ev.update(changes)
    return ev


def test_sample() -> None:
    result = parse((DATA / "device_events.json").read_bytes())
    assert result.rejects == []
    (c,) = result.tables["raw_iot_counts"].to_pylist()
    assert (c["store_id"], c["line"], c["count_in"], c["count_out"], c["seq"]) == (
        "s-01", "entrance", 4, 1, 1,
    )  # fmt: skip
    assert c["interval_start"] == datetime(2026, 10, 5, 0, 0, tzinfo=UTC)
    assert c["business_date"] == date(2026, 10, 5)
    (hb,) = result.tables["raw_device_heartbeats"].to_pylist()
    assert (hb["status"], hb["firmware"], hb["battery"], hb["store_id"]) == (
        "ok", "2.4.1", 0.91, "s-01",
    )  # fmt: skip


def test_business_date_is_the_local_date_and_shapes() -> None:
    for body in (count(), [count()], {"events": [count()]}):
        (c,) = parse(body).tables["raw_iot_counts"].to_pylist()
        assert c["business_date"] == date(2026, 10, 4)  # 23:59 local, 14:59 UTC


def test_track_one_row_per_point() -> None:
    ev = {
        "v": 1, "device_id": "tof-01", "seq": 77, "type": "track", "track_id": "t-9",
        "points": [
            {"ts": "2026-10-05T10:00:01.200+09:00", "x": 1.25, "y": 3.5, "zone": "cosmetics"},
            {"ts": "2026-10-05T10:00:02+09:00", "x": 2, "y": 3.0},
        ],
    }  # fmt: skip
    rows = parse(ev).tables["raw_iot_tracks"].to_pylist()
    assert [(r["x"], r["y"], r["zone"], r["track_id"]) for r in rows] == [
        (1.25, 3.5, "cosmetics", "t-9"), (2.0, 3.0, None, "t-9"),
    ]  # fmt: skip
    assert rows[0]["ts"] == datetime(2026, 10, 5, 1, 0, 1, 200000, tzinfo=UTC)


def test_zone_counts_of_a_tof_camera() -> None:
    (c,) = parse(count(device_id="tof-01", line="cosmetics")).tables["raw_iot_counts"].to_pylist()
    assert (c["device_id"], c["line"]) == ("tof-01", "cosmetics")
    (reject,) = parse(count(device_id="tof-01", line="entrance")).rejects
    assert "expected one of cosmetics" in reject.reason


def test_duplicate_seq_keeps_first() -> None:
    result = parse([count(), count(**{"in": 99}), count(seq=11)])
    assert result.rejects == []
    assert result.tables["raw_iot_counts"]["count_in"].to_pylist() == [5, 5]


@pytest.mark.parametrize(
    ("ev", "reason", "replayable"),
    [
        (count(device_id="pc-999"), "unknown device 'pc-999' for tenant 't1'", True),
        (count(device_id="pc-other"), "unknown device 'pc-other'", True),  # another tenant's
        (count(line="backdoor"), "line 'backdoor' is not a line of device 'pc-001'", False),
        (count(**{"in": -1}), "in: Input should be greater than or equal to 0", False),
        (count(interval_end="2026-10-04T23:58:00+09:00"), "is not after interval_start", False),
        (count(interval_start="2026-10-07T12:00:00+09:00",
               interval_end="2026-10-07T12:01:00+09:00"), "is more than 1 day", False),
        (count(v=2), "unsupported schema version v=2 (expected 1)", False),
        (count(seq="10"), "seq: Input should be a valid integer", False),
        (count(interval_start="2026-10-04T23:59:00"), "should have timezone info", False),
        ({"v": 1, "device_id": "pc-001", "seq": 1, "type": "dance"}, "does not match any", False),
        (count(type="heartbeat"), "heartbeat.ts: Field required", False),
    ],
)  # fmt: skip
def test_bad_events(ev: dict[str, Any], reason: str, replayable: bool) -> None:
    result = parse([count(seq=1), ev])
    (reject,) = result.rejects
    assert reject.reason.startswith("event 1: ") and reason in reject.reason, reject.reason
    assert reject.replayable is replayable and reject.line == 2
    assert result.tables["raw_iot_counts"].num_rows == 1


def test_future_heartbeat_and_track_rejected_to_their_tables() -> None:
    hb = {"v": 1, "device_id": "pc-001", "seq": 3, "type": "heartbeat",
          "ts": "2030-01-01T00:00:00+00:00", "status": "ok"}  # fmt: skip
    (reject,) = parse(hb).rejects
    assert reject.table == "raw_device_heartbeats" and "ts 2030-01-01" in reject.reason


def test_malformed_bodies() -> None:
    (reject,) = parse(b"{not json").rejects
    assert reject.reason.startswith("malformed JSON body:")
    (reject,) = parse(b"\xff\xfe").rejects
    assert "not valid UTF-8 at byte offset 0" in reject.reason
    (reject,) = parse({"events": 3}).rejects
    assert '"events" must be an array' in reject.reason
    (reject,) = parse([7]).rejects
    assert reject.reason == "event 0: expected an object, got int"


def _track(**changes: Any) -> dict[str, Any]:
    point = {"ts": "2026-10-05T10:00:01.5+09:00", "x": 1.5, "y": 2.5, "zone": "z"}
    ev = {"v": 1, "device_id": "tof-01", "seq": 5, "type": "track", "track_id": "t-1",
          "points": [point]}  # fmt: skip
    ev.update(changes)
    return ev


def _heartbeat(**changes: Any) -> dict[str, Any]:
    ev = {"v": 1, "device_id": "pc-001", "seq": 9, "type": "heartbeat",
          "ts": "2026-10-05T10:00:00Z", "status": "ok", "firmware": "1.2",
          "battery": 0.5}  # fmt: skip
    ev.update(changes)
    return ev


# Plain shapes the fast path takes, and near misses it must hand to the models unchanged.
HOSTILE = [
    count(), count(**{"in": True}), count(**{"in": 1.0}), count(seq=-1), count(seq=True),
    count(seq=2**63), count(seq=10**30), count(v=True), count(v=1.0), count(v="1"),
    count(device_id=""), count(device_id="x" * 129), count(device_id="pc-other"),
    count(line=""), count(line="entrance\u0000"), count(line=7), count(**{"out": -1}),
    count(interval_start="2026-10-04T23:59:00"), count(interval_start="2026-10-04 23:59:00+09:00"),
    count(interval_start="20261004T235900+0900"), count(interval_start="2026-02-30T10:00:00Z"),
    count(interval_start="2026-10-04T24:00:00+09:00"), count(interval_start="2026-10-04T23:59:60Z"),
    count(interval_start="2026-10-04T23:59:00.1234567+09:00"),
    count(interval_start="2026-10-04t23:59:00z"),
    count(interval_end="2026-10-04T23:59:00+09:00"), count(interval_end="2030-01-01T00:00:00Z"),
    count(interval_start="2026-10-04T14:59:00.000001Z"), count(interval_start=1_700_000_000),
    {k: v for k, v in count().items() if k != "in"} | {"count_in": 4}, count(type="COUNT"),
    _track(), _track(points=[]), _track(points=[{"ts": "2026-10-05T10:00:00Z", "x": 1, "y": 2}]),
    _track(points=[{"ts": "2026-10-05T10:00:00Z", "x": 1.0, "y": 2.0, "zone": None}]),
    _track(points=[{"ts": "2026-10-05T10:00:00Z", "x": float("nan"), "y": 2.0}]),
    _track(points=[{"ts": "2026-10-05T10:00:00Z", "x": 1.0, "y": 2.0, "zone": "\ud800"}]),
    _track(track_id=""), _track(track_id="trk-\ud800"), _track(points="p"), _track(points=[3]),
    _heartbeat(), _heartbeat(battery=1), _heartbeat(battery=1.5), _heartbeat(battery=float("nan")),
    _heartbeat(battery=None, firmware=None), _heartbeat(status=""), _heartbeat(status="\ud800"),
    _heartbeat(firmware=3), _heartbeat(ts="2030-01-01T00:00:00Z"), _heartbeat(device_id="tof-01"),
    [count()], None, "count", 7,
]  # fmt: skip


@pytest.mark.parametrize("raw", HOSTILE)
def test_fast_path_judges_like_the_models(raw: Any) -> None:
    """judge_event (plain shapes checked directly) agrees with check_event (pydantic) on every
    verdict, reason and value, so the fast path can never accept what the models refuse."""
    from tenpo.iot.preetl import _values_of, check_event, judge_event

    devices = {d.device_id: d for d in directory().devices if d.tenant_id == "t1"}
    latest = datetime(2026, 10, 6, tzinfo=UTC)
    slow = check_event(raw, "t1", devices.get, latest)
    fast = judge_event(raw, "t1", devices.get, latest)
    if slow.event is None:
        assert fast == slow
    else:
        assert fast == (_values_of(slow.event), slow.device)
        values = fast[0]
        assert [type(v) for v in values] == [type(v) for v in _values_of(slow.event)]
    # ... and with the topic's device (MQTT): a mismatch is judged by the models too.
    slow = check_event(raw, "t1", devices.get, latest, topic_device="pc-001")
    fast = judge_event(raw, "t1", devices.get, latest, topic_device="pc-001")
    assert fast == slow if slow.event is None else fast == (_values_of(slow.event), slow.device)


def test_plain_events_take_the_fast_path() -> None:
    from tenpo.iot.preetl import _plain_event

    for raw in (count(), _track(), _heartbeat(), _heartbeat(battery=None, firmware=None)):
        assert _plain_event(raw) is not None, raw
    for raw in (count(seq=True), count(interval_start="2026-10-04 23:59:00+09:00")):
        assert _plain_event(raw) is None, raw


def test_event_that_is_also_a_wrapper_is_rejected_whole_as_ambiguous() -> None:
    """Same rule as the gateway: neither the outer event nor the inner list is loaded."""
    result = parse({**count(), "events": [count(seq=11), count(seq=12)]})
    assert result.row_count == 0
    (reject,) = result.rejects
    assert "malformed JSON body: ambiguous body" in reject.reason
    assert "'device_id', 'in', 'interval_end'" in reject.reason


def test_huge_numbers_and_deep_nesting_reject_the_body_not_crash() -> None:
    (reject,) = parse(b'{"events": [{"seq": ' + b"9" * 5000 + b"}]}").rejects
    assert "malformed JSON body" in reject.reason
    (reject,) = parse(b"[" * 50_000 + b"]" * 50_000).rejects
    assert "malformed JSON body" in reject.reason
    (reject,) = parse(count(seq=10**30)).rejects  # fits JSON, not the int64 column
    assert "seq" in reject.reason and "less than or equal" in reject.reason
