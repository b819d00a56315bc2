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
