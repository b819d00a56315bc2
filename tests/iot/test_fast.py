"""The column-wise IoT path gives exactly the event-by-event path's rows and rejects."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tenpo.control.directory import DeviceRef, StaticDirectory
from tenpo.core.preetl import ParseResult
from tenpo.iot import IotPreEtl, _fast
from tenpo.iot._fast import parse_fast, parse_frames_fast
from tenpo.iot.preetl import MQTT_FRAMES, frame
from tenpo.lake.landing import ObjectRegistered
from tests.data.helpers import TENANT, event

EVENT = event("iot", registered_at=datetime(2026, 10, 26, tzinfo=UTC))
DIRECTORY = StaticDirectory(
    stores=[],
    devices=[
        DeviceRef("pc-tokyo", TENANT, "s-tokyo", "people_counter", lines=("entrance", "passby")),
        DeviceRef("pc-london", TENANT, "s-london", "people_counter", timezone="Europe/London"),
        DeviceRef("tof-zones", TENANT, "s-tokyo", "tof_camera", zones=("cosmetics",)),
    ],
)
LINES = {"pc-tokyo": ("entrance", "passby"), "pc-london": ("entrance", "passby"),
         "tof-zones": ("cosmetics",)}  # fmt: skip


@pytest.fixture(autouse=True)
def _columns_for_small_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fast, "MIN_EVENTS", 1)


def _stamp(rng: random.Random, at: datetime) -> str:
    zone = timezone(timedelta(minutes=rng.choice((540, 0, 60, -300))))
    text = at.astimezone(zone).isoformat()
    return text.replace("+00:00", "Z") if rng.random() < 0.3 else text


def _events(rng: random.Random, n: int, *, tracks: bool = False) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    # Around London's fall-back night (2026-10-25 01:00 UTC).
    base = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    for seq in range(n):
        device = rng.choice(list(LINES))
        at = base + timedelta(minutes=15 * rng.randrange(24))
        if tracks and device == "tof-zones" and rng.random() < 0.4:
            points = [{"ts": _stamp(rng, at + timedelta(seconds=7 * k)),
                       "x": round(rng.uniform(0, 9), 2), "y": round(rng.uniform(0, 9), 2),
                       **({"zone": "cosmetics"} if rng.random() < 0.8 else {})}
                      for k in range(rng.randint(1, 4))]  # fmt: skip
            events.append({"v": 1, "device_id": device, "seq": seq, "type": "track",
                           "track_id": f"20261024-{seq:05d}", "points": points})  # fmt: skip
        elif rng.random() < 0.75:
            events.append({"v": 1, "device_id": device, "seq": seq, "type": "count",
                           "line": rng.choice(LINES[device]), "interval_start": _stamp(rng, at),
                           "interval_end": _stamp(rng, at + timedelta(minutes=15)),
                           "in": rng.randrange(50), "out": rng.randrange(50)})  # fmt: skip
        else:
            beat: dict[str, Any] = {"v": 1, "device_id": device, "seq": seq, "type": "heartbeat",
                                    "ts": _stamp(rng, at), "status": "ok"}  # fmt: skip
            if rng.random() < 0.7:
                beat["firmware"] = "2.4.1"
            if rng.random() < 0.7:
                beat["battery"] = round(rng.random(), 2)
            events.append(beat)
    return events


def _spoil(rng: random.Random, ev: dict[str, Any], others: list[dict[str, Any]]) -> None:
    spoil = rng.choice(
        [
            lambda: ev.update(v=2),
            lambda: ev.update(v=True),
            lambda: ev.update(device_id="pc-unknown"),  # replayable
            lambda: ev.update(device_id=""),
            lambda: ev.update(seq=-1),
            lambda: ev.update(seq="5"),
            lambda: ev.update(seq=others[0]["seq"], device_id=others[0]["device_id"]),  # re-send
            lambda: ev.update(type="gossip"),
            lambda: ev.update(line="backdoor"),
            lambda: ev.update(interval_end=ev.get("interval_start")),
            lambda: ev.update(interval_start="2026-02-30T10:00:00+09:00"),
            lambda: ev.update(interval_start="2026-10-25T01:30:00"),  # no offset
            lambda: ev.update(interval_start="2026-10-25 01:30:00+00:00"),  # the model reads it
            lambda: ev.update(interval_end="2027-01-01T00:00:00Z"),  # in the future
            lambda: ev.update(ts="2027-01-01T00:00:00Z"),
            lambda: ev.update(**{"in": -1}),
            lambda: ev.update(**{"out": 2.0}),
            lambda: ev.update(status=""),
            lambda: ev.update(status="ünïcode"),
            lambda: ev.update(firmware=7),
            lambda: ev.update(battery=1.5),
            lambda: ev.update(battery=1),  # an integer: the model reads it
            lambda: ev.pop("device_id"),
            lambda: ev.update(extra="ignored"),
            lambda: ev.update(type="track", track_id="t", points=[]),
            lambda: ev.update(type="track", track_id="", points=[{"ts": _NOW, "x": 1.0, "y": 1.0}]),
            lambda: ev.update(
                type="track", track_id="ü", points=[{"ts": _NOW, "x": 1.0, "y": 1.0}]
            ),
            lambda: ev.update(type="track", track_id="t", points="here"),
            lambda: ev.update(type="track", track_id="t", points=[7]),
            lambda: ev.update(type="track", track_id="t", points=[{"ts": _NOW, "x": 1, "y": 1.0}]),
            lambda: ev.update(type="track", track_id="t", points=[{"ts": _NOW, "y": 1.0}]),
            lambda: ev.update(
                type="track",
                track_id="t",
                points=[{"ts": "2027-01-01T00:00:00Z", "x": 1.0, "y": 1.0}],
            ),
            lambda: ev.update(
                type="track", track_id="t", points=[{"ts": _NOW, "x": 1.0, "y": 1.0, "zone": 3}]
            ),
            lambda: ev.update(
                type="track", track_id="t", points=[{"ts": _NOW, "x": 1.0, "y": 1.0, "zone": "ünï"}]
            ),
            lambda: ev.update(
                type="track",
                track_id="t",
                points=[{"ts": "2026-10-24T23:00:00", "x": 1.0, "y": 1.0}],
            ),
        ]
    )
    spoil()


_NOW = "2026-10-24T23:00:00+09:00"


def _compare(data: bytes, registered: ObjectRegistered = EVENT) -> ParseResult:
    fast = IotPreEtl().parse(registered, data, DIRECTORY)
    rows = IotPreEtl(_fast=False).parse(registered, data, DIRECTORY)
    assert fast.tables.keys() == rows.tables.keys()
    for name, table in fast.tables.items():
        assert table.schema == rows.tables[name].schema
        assert table.to_pylist() == rows.tables[name].to_pylist(), name
    assert [(r.table, r.reason, r.record, r.line, r.replayable) for r in fast.rejects] == [
        (r.table, r.reason, r.record, r.line, r.replayable) for r in rows.rejects
    ]
    return fast


@pytest.mark.parametrize("seed", range(12))
def test_random_bodies_with_bad_events_match_the_event_path(seed: int) -> None:
    rng = random.Random(seed)
    events = _events(rng, 80, tracks=True)
    for ev in rng.sample(events[1:], k=rng.randint(0, 6)):
        _spoil(rng, ev, events)
    result = _compare(json.dumps({"events": events}, ensure_ascii=False).encode())
    assert result.tables["raw_iot_counts"].num_rows > 0
    assert result.tables["raw_iot_tracks"].num_rows > 0


_RECEIVED = (
    datetime(2026, 10, 26, tzinfo=UTC),
    datetime(2026, 10, 25, 3, tzinfo=UTC),
    datetime(2026, 10, 23, 12, tzinfo=timezone(timedelta(hours=9))),
)


def _frames(rng: random.Random, events: list[dict[str, Any]]) -> bytes:
    """The events as MQTT messages of up to 5 events of one device each, received at a few
    different times (one too early for some of the events: they are in its future)."""
    out = []
    pending = list(events)
    while pending:
        device = pending[0].get("device_id")
        batch = [e for e in pending if e.get("device_id") == device][: rng.randint(1, 5)]
        if rng.random() < 0.1:  # an event of another device on this topic
            batch.append(rng.choice(events))
        pending = [e for e in pending if all(e is not b for b in batch)]
        topic_device = device if isinstance(device, str) else "pc-tokyo"
        at = rng.choice(_RECEIVED)
        payload = json.dumps(batch if len(batch) > 1 or rng.random() < 0.5 else batch[0],
                             ensure_ascii=False).encode()  # fmt: skip
        out.append(frame(f"t/{TENANT}/devices/{topic_device}/events", topic_device, at,
                         len(out) + 1, False, payload))  # fmt: skip
    return b"".join(out)


@pytest.mark.parametrize("seed", range(12))
def test_random_mqtt_frames_with_bad_events_match_the_message_path(seed: int) -> None:
    rng = random.Random(100 + seed)
    events = _events(rng, 80, tracks=True)
    for ev in rng.sample(events[1:], k=rng.randint(0, 6)):
        _spoil(rng, ev, events)
    data = _frames(rng, events)
    registered = EVENT.model_copy(update={"content_type": MQTT_FRAMES})
    result = _compare(data, registered)
    assert result.tables["raw_iot_counts"].num_rows > 0
    assert result.tables["raw_device_heartbeats"].num_rows > 0


def test_clean_frames_take_the_columns_and_bad_frames_the_message_path() -> None:
    rng = random.Random(5)
    events = _events(rng, 40, tracks=True)
    at = datetime(2026, 10, 26, tzinfo=UTC)
    data = b"".join(
        frame(f"t/{TENANT}/devices/{e['device_id']}/events", e["device_id"], at, i, False,
              json.dumps([e]).encode())
        for i, e in enumerate(events)
    )  # fmt: skip
    registered = EVENT.model_copy(update={"content_type": MQTT_FRAMES})
    fast = parse_frames_fast(registered, data, DIRECTORY)
    assert fast is not None and fast.rejects == []
    got = sum(t.num_rows for t in fast.tables.values())
    assert got == sum(len(e["points"]) if e["type"] == "track" else 1 for e in events)
    assert fast.tables["raw_iot_tracks"].num_rows > 0
    broken = data + frame("t/x", "pc-tokyo", at, 99, False, b"[x")
    assert parse_frames_fast(registered, broken, DIRECTORY) is None
    rows = _compare(broken, registered)
    assert len(rows.rejects) == 1
    assert rows.rejects[0].reason.startswith(f"message {len(events) + 1}: malformed JSON payload")


def test_columns_decide_clean_bodies_and_name_the_bad_events() -> None:
    rng = random.Random(3)
    events = _events(rng, 30)
    events[4]["device_id"] = "pc-unknown"
    events[9]["v"] = 2
    events[12] = dict(events[2])  # a re-send of event 2, dropped
    data = json.dumps(events).encode()
    fast = parse_fast(EVENT, data, DIRECTORY)
    assert fast is not None
    assert [r.line for r in fast.rejects] == [5, 10]
    assert "unknown device 'pc-unknown'" in fast.rejects[0].reason and fast.rejects[0].replayable
    assert "unsupported schema version v=2" in fast.rejects[1].reason
    loaded = sum(fast.tables[t].num_rows for t in ("raw_iot_counts", "raw_device_heartbeats"))
    assert loaded == 27
    _compare(data)


def test_what_only_the_model_reads_leaves_the_object_to_the_event_path() -> None:
    rng = random.Random(4)
    events = _events(rng, 10)
    beat = next(e for e in events if e["type"] == "heartbeat")
    beat["battery"] = 1  # the model reads an integer battery; the columns want a float
    data = json.dumps(events).encode()
    assert parse_fast(EVENT, data, DIRECTORY) is None
    assert _compare(data).rejects == []


@pytest.mark.parametrize("seed", range(8))
def test_several_objects_in_one_pass_match_the_event_path_object_by_object(seed: int) -> None:
    rng = random.Random(200 + seed)
    items = []
    for k in range(rng.randint(1, 6)):
        events = _events(rng, rng.randint(0, 60), tracks=True)
        for ev in rng.sample(events, k=min(len(events), rng.randint(0, 3))):
            _spoil(rng, ev, events)
        base = EVENT.model_copy(update={"object_id": f"obj{k}"})
        if rng.random() < 0.2:  # another tenant: none of its devices is known
            base = base.model_copy(update={"tenant_id": "t-other"})
        if rng.random() < 0.4:
            registered = base.model_copy(update={"content_type": MQTT_FRAMES})
            items.append((registered, _frames(rng, events) if events else b""))
        else:
            body = events if rng.random() < 0.5 else {"events": events}
            items.append((base, json.dumps(body, ensure_ascii=False).encode()))
    if rng.random() < 0.3:
        items.append((EVENT.model_copy(update={"object_id": "broken"}), b'{"events": [1,'))
    many = IotPreEtl().parse_many(items, DIRECTORY)
    assert len(many) == len(items)
    for (registered, data), fast in zip(items, many, strict=True):
        rows = IotPreEtl(_fast=False).parse(registered, data, DIRECTORY)
        assert fast.tables.keys() == rows.tables.keys()
        for name, table in fast.tables.items():
            assert table.schema == rows.tables[name].schema
            assert table.to_pylist() == rows.tables[name].to_pylist(), name
        assert [(r.table, r.reason, r.record, r.line, r.replayable) for r in fast.rejects] == [
            (r.table, r.reason, r.record, r.line, r.replayable) for r in rows.rejects
        ]
