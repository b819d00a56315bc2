"""Tracks carried across chunk boundaries: a person crossing the line as one chunk ends and
the next begins is one track and one event, in bulk and in bus-driven mode."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tenpo.bus.sqlite import SqliteBus
from tenpo.features.faiss_store import FaissFeatureStore
from tenpo.lake.base import FsspecLake
from tenpo.lake.landing import LandingZone
from tenpo.video.analyzer import Analyzer, AnalyzerConfig
from tenpo.video.bulk import analyze_chunks, analyze_day, chunk_keys, follow_chunks
from tenpo.video.chunks import VIDEO_CHUNKS
from tenpo.video.codec import encode_mp4
from tenpo.video.detect import HogFaceDetector
from tenpo.video.embed import DlibResNetExtractor
from tenpo.video.events import VisitorEvent
from tenpo.video.quality import LandmarkQualityChecker
from tenpo.video.recorder import OpenCvSource, Recorder
from tenpo.video.synthetic import Walk, render, truth
from tenpo.video.track import KalmanTracker

START = datetime(2026, 11, 2, 1, tzinfo=UTC)  # 10:00 in Tokyo
# Crosses the line (y = 0.5) at 1.0 s: exactly where the first 1-s chunk ends.
WALKS = [Walk("astronaut", "entry", 0.1, 1.8, x=0.4), Walk("lfw0", "exit", 1.2, 1.6, x=0.75)]


@pytest.fixture(scope="module")
def models() -> tuple[HogFaceDetector, DlibResNetExtractor]:
    return HogFaceDetector(), DlibResNetExtractor()


def test_a_crossing_at_a_chunk_boundary_is_counted_once(
    tmp_path: Path, models: tuple[HogFaceDetector, DlibResNetExtractor]
) -> None:
    lake = FsspecLake(str(tmp_path / "lake"))
    bus = SqliteBus(tmp_path / "bus.db", ack_wait=60)
    clip = tmp_path / "entrance.mp4"
    clip.write_bytes(encode_mp4((f.image for f in render(WALKS, 3.0, start=START)), 15, crf=18))
    rec = Recorder(lake=lake, bus=bus, tenant_id="t1", camera_id="cam-1", chunk_seconds=1.0)
    chunks = rec.run(lambda: OpenCvSource(str(clip), start=START))
    assert [c.frames for c in chunks] == [15, 15, 15]
    keys = chunk_keys(lake, "t1", "cam-1", START.date())
    store = FaissFeatureStore(tmp_path / "features")

    def make(tenant: str, camera: str) -> Analyzer:
        return Analyzer(
            tenant_id=tenant,
            camera_id=camera,
            detector=models[0],
            quality=LandmarkQualityChecker(),
            tracker=KalmanTracker(),
            extractor=models[1],
            store=store,
            config=AnalyzerConfig(),
        )

    def summary(events: list[VisitorEvent]) -> list[tuple[str, float]]:
        return [(e.event, round((e.ts - START).total_seconds(), 1)) for e in events]

    expected = [(ev, round((ts - START).total_seconds(), 1)) for _, ev, ts in truth(WALKS, START)]
    assert expected == [("entry", 1.0), ("exit", 2.0)]

    # Each chunk on its own (what carrying the tracks replaces) loses both crossings.
    alone = [e for k in keys for e in analyze_chunks(lake, make("t1", "cam-1"), [k])]
    assert alone == []

    # Bus-driven: the chunks announced by the recorder, the open track carried over.
    assert bus.pending(VIDEO_CHUNKS, "video-analyzer") == 3
    landing = LandingZone(lake, bus, "Asia/Tokyo")
    made: list[Analyzer] = []

    def make_counted(tenant: str, camera: str) -> Analyzer:
        made.append(make(tenant, camera))
        return made[-1]

    assert follow_chunks(bus, lake, landing, make_counted, timeout=0.2) == 3
    assert len(made) == 1  # one analyzer for the camera's contiguous chunks
    assert sorted(summary(made[0].events)) == expected
    assert bus.pending(VIDEO_CHUNKS, "video-analyzer") == 0
    landed = lake.list("landing/visitor_events/")
    assert len(landed) == 1
    lines = [ln for k in landed for ln in lake.get(k).decode().splitlines()]
    assert sorted(VisitorEvent.model_validate_json(ln).event for ln in lines) == ["entry", "exit"]
    # Bulk: the day's chunks through one analyzer; the same events, byte for byte (the
    # landing is idempotent: no second object).
    events, _ = analyze_day(lake, landing, make("t1", "cam-1"), START.date())
    assert sorted(summary(events)) == expected
    assert len({e.track_id for e in events}) == 2

    assert lake.list("landing/visitor_events/") == landed
    bulk_ids = {e.event: e.person_id for e in events}
    assert {e.event: e.person_id for e in made[0].events} == bulk_ids
