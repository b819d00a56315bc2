"""Visitor-event Pre-ETL (JSONL from the analyzer)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from tenpo.video import VisitorEventsPreEtl
from tenpo.warehouse.schemas import RAW_VISITOR_EVENTS
from tests.data.helpers import directory, event


def line(**changes: Any) -> str:
    ev = {"camera_id": "cam-1", "person_id": "p-1", "event": "entry",
          "ts": "2026-10-05T09:30:00+09:00", "quality": 0.82, "track_id": "tr-1"}  # fmt: skip
    ev.update(changes)
    return json.dumps(ev)


def test_events_and_rejects() -> None:
    data = "\n".join(
        [
            line(),
            line(event="exit", person_id=None, ts="2026-10-05T09:45:10.5+09:00"),
            "",
            line(camera_id="pc-001"),  # a registered device, but not an rgb camera
            line(camera_id="cam-9"),
            line(event="wave"),
            line(ts="2026-10-05T09:30:00"),
            line(quality=1.5),
            "{oops",
        ]
    ).encode()
    result = VisitorEventsPreEtl().parse(event("visitor_events"), data, directory())
    table = result.tables["raw_visitor_events"]
    assert table.schema == RAW_VISITOR_EVENTS
    first, second = table.to_pylist()
    assert (first["store_id"], first["person_id"], first["event"], first["quality"]) == (
        "s-01", "p-1", "entry", 0.82,
    )  # fmt: skip
    assert first["ts"] == datetime(2026, 10, 5, 0, 30, tzinfo=UTC)
    assert first["business_date"] == date(2026, 10, 5)
    assert second["person_id"] is None and second["event"] == "exit"
    reasons = [(r.line, r.reason, r.replayable) for r in result.rejects]
    assert reasons[0][0] == 4 and "camera 'pc-001' is not a registered rgb_camera" in reasons[0][1]
    assert reasons[1][2] is True and "camera 'cam-9'" in reasons[1][1]
    assert "event: Input should be 'entry' or 'exit'" in reasons[2][1]
    assert "ts: Input should have timezone info" in reasons[3][1]
    assert "quality: Input should be less than or equal to 1" in reasons[4][1]
    assert reasons[5][0] == 9 and "malformed JSON" in reasons[5][1]


def _both(data: bytes) -> tuple[Any, Any, Any]:
    """(vectorised table or None, line-by-line result, what parse returns) for ``data``."""
    from tenpo.video.events import _vectorised

    ev = event("visitor_events")
    fast = _vectorised(ev, data, data.decode("utf-8"), directory())
    slow_data = data + b"\n{oops"  # a malformed line sends it down the line-by-line path
    slow = VisitorEventsPreEtl().parse(ev, slow_data, directory())
    return fast, slow, VisitorEventsPreEtl().parse(ev, data, directory())


PLAIN = [
    line(),
    line(event="exit", person_id=None, ts="2026-10-05T09:45:10.5+09:00", quality=1),
    line(camera_id="cam-1", ts="2026-10-04T15:30:00Z", track_id="tr-2", extra=[1, "x"]),
    "   ",
    line(ts="2026-10-04T23:59:59.999999+09:00", quality=0),
]


def test_vectorised_path_loads_plain_objects_as_the_line_path_does() -> None:
    data = "\n".join(PLAIN).encode()
    fast, slow, result = _both(data)
    assert fast is not None, "plain lines take the vectorised path"
    assert fast.schema == RAW_VISITOR_EVENTS
    assert fast.to_pylist() == slow.tables["raw_visitor_events"].to_pylist()
    assert result.tables["raw_visitor_events"].equals(fast) and result.rejects == []
    assert [r["business_date"] for r in fast.to_pylist()] == [date(2026, 10, 5)] * 2 + [
        date(2026, 10, 5), date(2026, 10, 4),
    ]  # fmt: skip


def test_anything_unusual_takes_the_line_path() -> None:
    """Each of these must not be judged by the vectorised path (it would differ or could not
    name the problem): the line-by-line path's rows and rejects are what parse returns."""
    no_person = json.dumps({k: v for k, v in json.loads(line()).items() if k != "person_id"})
    nested = json.dumps({**json.loads(no_person), "x": {"person_id": "p"}})
    unusual = [
        no_person, nested, line(camera_id=7), line(quality=True), line(quality=float("nan")),
        line(quality=-0.1), line(event="wave"), line(camera_id=""), line(track_id=""),
        line(ts="2026-10-05T09:30:00"), line(ts="2026-10-05 09:30:00+09:00"),
        line(ts="2026-02-30T09:30:00+09:00"), line(ts=5), line(camera_id="cam-9"),
        line(camera_id="pc-001"), line(person_id="p\u2028x"),
        line().replace("tr-1", "tr\r1"), line().replace("tr-1", "tr\t1"),
        '{"camera_id": "cam-1", "camera_id": "cam-1"}', "[1]", "null",
    ]  # fmt: skip
    for bad in unusual:
        data = "\n".join([line(), bad]).encode("utf-8", errors="surrogatepass")
        fast, slow, result = _both(data)
        assert fast is None, bad
        rows = result.tables["raw_visitor_events"].to_pylist()
        assert rows == slow.tables["raw_visitor_events"].to_pylist(), bad
        assert [(r.line, r.reason) for r in result.rejects] == [
            (r.line, r.reason) for r in slow.rejects[:-1]
        ], bad
    # Escapes (a lone surrogate among them) are never judged by Arrow.
    escaped = "\n".join([line(), line(person_id="p\ud800")]).encode()
    assert _both_fast(escaped) is None


def _both_fast(data: bytes) -> Any:
    from tenpo.video.events import _vectorised

    return _vectorised(event("visitor_events"), data, data.decode("utf-8"), directory())
