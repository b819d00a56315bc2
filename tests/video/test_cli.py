"""`tenpo video record|analyze` and `tenpo features erase` over the embedded stack, into
``raw_visitor_events`` through the landing zone and the streamer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenpo.cli import app
from tenpo.core.settings import Settings
from tenpo.lake import open_lake
from tenpo.streamer import read_table
from tenpo.video.codec import encode_mp4
from tenpo.video.synthetic import Walk, render

WALKS = [
    Walk("astronaut", "entry", 0.1, 1.6, x=0.3),
    Walk("lfw46", "exit", 0.4, 1.6, x=0.75),
]


def setup_camera(settings: Settings, tmp_path: Path) -> Path:
    from tenpo.control import ControlPlane

    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("t1", "Tenant One")
    store = control.create_store("t1", "T01", "Store T01")
    line = {"line": {"a": [0.0, 0.5], "b": [1.0, 0.5]}}
    control.create_device("t1", "cam-1", store.store_id, "rgb_camera", config=line)
    control.dispose()
    clip = tmp_path / "entrance.mp4"
    start = datetime(2026, 11, 2, 1, tzinfo=UTC)
    clip.write_bytes(encode_mp4((f.image for f in render(WALKS, 2.4, start=start)), 15, crf=18))
    return clip


def test_record_then_analyze_into_raw_visitor_events(settings: Settings, tmp_path: Path) -> None:
    clip = setup_camera(settings, tmp_path)
    runner = CliRunner()
    out = runner.invoke(
        app, ["video", "record", str(clip), "--camera", "cam-1", "--chunk-seconds", "1"]
    )
    assert out.exit_code == 0, out.output
    assert "recorded 36 frames in 3 chunks" in out.output
    lake = open_lake(settings.lake_root)
    keys = lake.list("video/tenant=t1/camera=cam-1/")
    assert len(keys) == 3
    day = keys[0].split("/date=")[1][:10]

    out = runner.invoke(app, ["video", "analyze", "--camera", "cam-1", "--date", day])
    assert out.exit_code == 0, out.output
    assert "2 visitor events (1 entries, 1 exits)" in out.output
    out = runner.invoke(app, ["streamer", "run", "--until-idle", "--idle", "0.3"])
    assert out.exit_code == 0, out.output
    rows = read_table(lake, "raw_visitor_events", "t1").to_pylist()
    assert sorted(r["event"] for r in rows) == ["entry", "exit"]
    assert {r["camera_id"] for r in rows} == {"cam-1"}
    person = next(r["person_id"] for r in rows if r["event"] == "entry")
    assert person and person != next(r["person_id"] for r in rows if r["event"] == "exit")

    # Re-processing the same day lands nothing new (same bytes, same object id).
    out = runner.invoke(app, ["video", "analyze", "--camera", "cam-1", "--date", day])
    assert out.exit_code == 0, out.output
    assert len(lake.list("landing/visitor_events/")) == 1

    out = runner.invoke(app, ["features", "erase", "--tenant", "t1", "--person", person])
    assert out.exit_code == 0, out.output
    assert "erased 1 vectors" in out.output
    out = runner.invoke(app, ["features", "erase", "--tenant", "t1", "--person", person])
    assert out.exit_code == 2 and "has no person" in out.output


@pytest.mark.slow
def test_record_with_streaming_analysis_and_bad_arguments(
    settings: Settings, tmp_path: Path
) -> None:
    clip = setup_camera(settings, tmp_path)
    runner = CliRunner()
    out = runner.invoke(app, ["video", "record", str(clip), "--camera", "cam-1", "--analyze"])
    assert out.exit_code == 0, out.output
    assert "recorded 36 frames in 1 chunks" in out.output
    assert "landed 2 visitor events" in out.output
    out = runner.invoke(app, ["video", "record", str(clip), "--camera", "nope"])
    assert out.exit_code == 2 and "no rgb_camera 'nope'" in out.output
    out = runner.invoke(app, ["video", "analyze", "--camera", "cam-1", "--date", "2026-13-01"])
    assert out.exit_code == 2 and "--date must be YYYY-MM-DD" in out.output
    out = runner.invoke(app, ["video", "analyze", "--camera", "cam-1", "--date", "2020-01-01"])
    assert out.exit_code == 2 and "no video chunks" in out.output
    out = runner.invoke(app, ["video", "record", str(tmp_path / "x.mp4"), "--camera", "cam-1"])
    assert out.exit_code == 2 and "cannot open video" in out.output


@pytest.mark.slow
def test_demo_video_flow_matches_truth(settings: Settings) -> None:
    from tenpo.cli.video import run_video_demo

    assert run_video_demo(settings) == []
    lake = open_lake(str(settings.data_dir / "demo-video" / "lake"))
    rows = read_table(lake, "raw_visitor_events", "demo-video").to_pylist()
    assert sorted(r["event"] for r in rows) == ["entry", "entry", "exit", "exit"]
    assert len({r["person_id"] for r in rows}) == 3  # the astronaut came back
    # The chunks went through the gateway's upload route (the spool is empty, none refused).
    from tenpo.video.spool import ChunkSpool

    assert len(lake.list("video/tenant=demo-video/camera=cam-entrance/")) == 4
    status = ChunkSpool(settings.data_dir / "demo-video" / "spool").status()
    assert (status["pending"], status["rejected"]) == (0, 0)
