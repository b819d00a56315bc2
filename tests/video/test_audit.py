"""Counting-accuracy audit: figures by hand, `tenpo video audit` over raw_visitor_events,
the report in the lake and at ``GET /v1/video/audits/{camera_id}``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.core.errors import BadInput
from tenpo.core.settings import Settings
from tenpo.lake import open_lake
from tenpo.video.audit import Crossing, audit, read_truth_csv
from tenpo.video.events import VisitorEvent
from tenpo.video.synthetic import truth_csv

T0 = datetime(2026, 11, 2, 1, tzinfo=UTC)  # 10:00 in Tokyo


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# Hand count: 4 entries and 3 exits by four people.
TRUTH = [
    ("ann", "entry", at(10)),
    ("bob", "entry", at(20)),
    ("cat", "entry", at(30)),
    ("dan", "entry", at(40)),
    ("ann", "exit", at(100)),
    ("bob", "exit", at(110)),
    ("cat", "exit", at(120)),
]
# The analyzer: ann, bob matched; cat missed, a spurious entry at 60 s; dan given bob's ID
# (a false merge); exits: ann right, bob with no PersonID, cat right but 0.8 s late.
PREDICTED = [
    ("p-a", "entry", at(10.3)),
    ("p-b", "entry", at(19.6)),
    ("p-b", "entry", at(40.2)),
    ("p-x", "entry", at(60)),
    ("p-a", "exit", at(100.1)),
    (None, "exit", at(110.4)),
    ("p-c", "exit", at(120.8)),
]


def test_audit_figures_by_hand() -> None:
    truth = read_truth_csv(truth_csv(TRUTH))
    assert truth[0] == Crossing(at(10), "entry", "ann")
    report = audit([Crossing(ts, ev, pid) for pid, ev, ts in PREDICTED], truth, tolerance_s=1.0)
    # entries: 4 counted, 4 true, 3 matched (10, 20, 40; 60 is spurious, 30 missed)
    assert (report.entry.truth, report.entry.predicted, report.entry.matched) == (4, 4, 3)
    assert report.entry.precision == report.entry.recall == 0.75
    assert report.entry.count_accuracy == 1.0  # the count is right, two events are wrong
    assert (report.exit.matched, report.exit.count_accuracy) == (3, 1.0)
    assert report.missed == ["entry 2026-11-02T01:00:30+00:00 cat"]
    assert report.spurious == ["entry 2026-11-02T01:01:00+00:00"]
    # Re-id over 6 matched labelled crossings: a person's crossings carrying that person's
    # most frequent ID: ann 2/2, bob 1/2 (no ID on the exit), cat 1/1, dan 1/1 → 5/6. Of the
    # 5 with an ID, one is someone else's ID (dan under p-b, whose person is bob) → 1/5.
    assert report.reid.labelled_events == 6
    assert report.reid.same_person_same_id == round(5 / 6, 4)
    assert report.reid.false_merge_rate == 0.2
    assert report.reid.merged_pairs == [("bob", "dan")]
    # A tighter tolerance loses the late exit.
    strict = audit([Crossing(ts, ev, p) for p, ev, ts in PREDICTED], truth, tolerance_s=0.5)
    assert (strict.exit.matched, strict.exit.recall) == (2, round(2 / 3, 4))


def test_truth_csv_errors_name_the_line() -> None:
    with pytest.raises(BadInput, match="line 3: direction must be entry or exit"):
        read_truth_csv(
            "ts,direction\n2026-11-02T10:00:00+09:00,entry\n2026-11-02T10:01:00+09:00,in\n"
        )
    with pytest.raises(BadInput, match="line 2: ts needs a UTC offset"):
        read_truth_csv("ts,direction\n2026-11-02T10:00:00,entry\n")
    with pytest.raises(BadInput, match="header must name ts and direction"):
        read_truth_csv("time,way\n")
    with pytest.raises(BadInput, match="empty"):
        read_truth_csv("")


def _world(settings: Settings) -> str:
    """Tenant t1 with camera cam-1 in store T01 (Tokyo); its visitor events loaded."""
    from tenpo.control import ControlPlane
    from tenpo.lake.landing import LandingZone
    from tenpo.video.bulk import land_events

    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("t1", "Tenant One")
    control.create_tenant("t2", "Tenant Two")
    store = control.create_store("t1", "T01", "Store T01")
    control.create_device("t1", "cam-1", store.store_id, "rgb_camera")
    _, token = control.create_api_key("t1", "reader", ["read"])
    _, other = control.create_api_key("t2", "reader", ["read"])
    control.dispose()
    events = [
        VisitorEvent(camera_id="cam-1", person_id=p, event=ev, ts=ts, quality=0.8, track_id=f"k{i}")  # type: ignore[arg-type]
        for i, (p, ev, ts) in enumerate(PREDICTED)
    ]
    lake = open_lake(settings.lake_root)
    from tenpo.bus import open_bus

    land_events(
        LandingZone(lake, open_bus(settings), "Asia/Tokyo"), "t1", events, date(2026, 11, 2)
    )
    return token + " " + other


def test_cli_audit_writes_the_report_and_the_api_serves_it(
    settings: Settings, tmp_path: Path
) -> None:
    from tenpo.api import create_app

    token, other = _world(settings).split()
    runner = CliRunner()
    out = runner.invoke(app, ["streamer", "run", "--until-idle", "--idle", "0.3"])
    assert out.exit_code == 0, out.output
    truth = tmp_path / "crossings.csv"
    truth.write_text(truth_csv(TRUTH))
    out = runner.invoke(
        app, ["video", "audit", "--camera", "cam-1", "--date", "2026-11-02", "--truth", str(truth)]
    )
    assert out.exit_code == 0, out.output
    assert "75.0%" in out.output and "missed   entry 2026-11-02T01:00:30+00:00 cat" in out.output
    key = "artifacts/video_audit/tenant=t1/camera=cam-1/date=2026-11-02.json"
    assert f"report {key}" in out.output
    saved = json.loads(open_lake(settings.lake_root).get(key))
    assert saved["entry"]["matched"] == 3 and saved["reid"]["false_merge_rate"] == 0.2
    assert len(saved["truth_sha256"]) == 64

    # Bad input: clear messages, exit 2.
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,direction\n2026-11-05T10:00:00+09:00,entry\n")
    for args, message in (
        (["--date", "2026-11-02", "--truth", str(bad)], "not on an audited date"),
        (["--date", "2026-11-32", "--truth", str(truth)], "--date must be YYYY-MM-DD"),
        (["--date", "2026-11-02", "--truth", str(tmp_path / "nope.csv")], "cannot read --truth"),
    ):
        out = runner.invoke(app, ["video", "audit", "--camera", "cam-1", *args])
        assert out.exit_code == 2 and message in out.output, out.output

    with TestClient(create_app(settings)) as client:
        url = "/v1/video/audits/cam-1?date=2026-11-02"
        got = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert got.status_code == 200, got.text
        assert got.json()["entry"] == saved["entry"] and got.json()["camera_id"] == "cam-1"
        # Another tenant's key does not see the camera; no audit of another date; bad date.
        leak = client.get(url, headers={"Authorization": f"Bearer {other}"})
        assert leak.status_code == 404
        assert leak.headers["content-type"].startswith("application/problem+json")
        none = client.get(
            "/v1/video/audits/cam-1?date=2026-11-03", headers={"Authorization": f"Bearer {token}"}
        )
        assert none.status_code == 404 and "no counting audit" in none.json()["detail"]
        bad_date = client.get(
            "/v1/video/audits/cam-1?date=11/02", headers={"Authorization": f"Bearer {token}"}
        )
        assert bad_date.status_code == 422
        assert client.get(url).status_code == 401
