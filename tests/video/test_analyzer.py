"""The analyzer end to end with the real models on synthetic clips of real faces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tenpo.features.faiss_store import FaissFeatureStore
from tenpo.video.analyzer import Analyzer, AnalyzerConfig
from tenpo.video.detect import HogFaceDetector
from tenpo.video.embed import DlibResNetExtractor
from tenpo.video.events import VisitorEvent
from tenpo.video.quality import LandmarkQualityChecker
from tenpo.video.synthetic import Walk, render, truth
from tenpo.video.track import KalmanTracker

DAY1 = datetime(2026, 11, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def models() -> tuple[HogFaceDetector, DlibResNetExtractor]:
    return HogFaceDetector(), DlibResNetExtractor()


def analyze(
    models: tuple[HogFaceDetector, DlibResNetExtractor],
    store: FaissFeatureStore,
    walks: list[Walk],
    seconds: float,
    start: datetime,
    tenant: str = "t1",
) -> tuple[list[VisitorEvent], Analyzer]:
    analyzer = Analyzer(
        tenant_id=tenant,
        camera_id="cam-1",
        detector=models[0],
        quality=LandmarkQualityChecker(),
        tracker=KalmanTracker(),
        extractor=models[1],
        store=store,
        config=AnalyzerConfig(detect_every=3),
    )
    for frame in render(walks, seconds, start=start):
        analyzer.process(frame)
    analyzer.finish()
    return sorted(analyzer.events, key=lambda e: e.ts), analyzer


def test_entries_exits_and_reidentification(
    tmp_path: Path, models: tuple[HogFaceDetector, DlibResNetExtractor]
) -> None:
    store = FaissFeatureStore(tmp_path)
    day1 = [
        Walk("astronaut", "entry", 0.1, 1.6, x=0.25),
        Walk("lfw0", "exit", 0.3, 1.6, x=0.75),
    ]
    events, analyzer = analyze(models, store, day1, 2.2, DAY1)
    expected = truth(day1, DAY1)
    assert [e.event for e in events] == [ev for _, ev, _ in expected]
    for got, (_, _, when) in zip(events, expected, strict=True):
        assert abs((got.ts - when).total_seconds()) < 0.4
        assert 0.3 < got.quality <= 1
    astro, lfw = events[0].person_id, events[1].person_id
    assert astro and lfw and astro != lfw
    assert analyzer.stats.embeddings <= 2 * 3  # best frames only, not every frame
    assert len({e.track_id for e in events}) == 2

    # Next day: the astronaut comes back a little smaller and brighter, leaves; a new face.
    day2 = [
        Walk("astronaut", "exit", 0.1, 1.6, x=0.6, scale=0.92, brightness=1.12),
        Walk("lfw1", "entry", 0.2, 1.6, x=0.2),
    ]
    events2, _ = analyze(models, store, day2, 2.2, DAY1 + timedelta(days=1))
    by_event = {e.event: e.person_id for e in events2}
    assert by_event["exit"] == astro
    assert by_event["entry"] not in (astro, lfw)

    # Erased: the astronaut comes back as a new person.
    assert store.erase("t1", astro) == 1
    events3, _ = analyze(models, store, day2[:1], 1.8, DAY1 + timedelta(days=2))
    assert [e.event for e in events3] == ["exit"]
    assert events3[0].person_id not in (astro, lfw, by_event["entry"])

    # Another tenant never matches the first tenant's people.
    other, _ = analyze(models, store, day1[:1], 1.8, DAY1, tenant="t2")
    assert other[0].person_id not in {astro, events3[0].person_id}


def test_blurred_and_tiny_faces_are_rejected_and_get_no_person(
    tmp_path: Path, models: tuple[HogFaceDetector, DlibResNetExtractor]
) -> None:
    store = FaissFeatureStore(tmp_path)
    walks = [Walk("lfw18", "entry", 0.1, 1.6, x=0.3, blur_sigma=3.0)]
    events, analyzer = analyze(models, store, walks, 1.8, DAY1)
    assert analyzer.quality.rejections["blurred"] > 0
    assert analyzer.quality.accepted == 0
    assert [(e.event, e.person_id, e.quality) for e in events] == [("entry", None, 0.0)]
    assert store.count("t1") == 0
