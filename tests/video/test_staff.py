"""Enrolled staff are never counted: a member of staff enrolled from one photo walks through
the door with a customer; only the customer's entry is emitted, and the staff member gets
no PersonID in the Feature DB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from tenpo.core.errors import BadInput
from tenpo.features.faiss_store import FaissFeatureStore
from tenpo.video.analyzer import Analyzer, AnalyzerConfig
from tenpo.video.detect import HogFaceDetector
from tenpo.video.embed import DlibResNetExtractor
from tenpo.video.enrol import StaffMatcher, photo_descriptors
from tenpo.video.quality import LandmarkQualityChecker
from tenpo.video.synthetic import Walk, face_sprite, render
from tenpo.video.track import KalmanTracker

START = datetime(2026, 11, 2, 1, tzinfo=UTC)


def _run(store: FaissFeatureStore, staff: StaffMatcher | None) -> Analyzer:
    analyzer = Analyzer(
        tenant_id="t1",
        camera_id="cam-1",
        detector=HogFaceDetector(),
        quality=LandmarkQualityChecker(),
        tracker=KalmanTracker(),
        extractor=DlibResNetExtractor(),
        store=store,
        config=AnalyzerConfig(detect_every=3),
        staff=staff,
    )
    walks = [Walk("lfw46", "entry", 0.1, 1.6, x=0.25), Walk("astronaut", "entry", 0.2, 1.6, x=0.72)]
    for frame in render(walks, 2.2, start=START):
        analyzer.process(frame)
    analyzer.finish()
    return analyzer


def test_enrolled_staff_emit_no_events(tmp_path: Path) -> None:
    ok, photo = cv2.imencode(".jpg", face_sprite("lfw46"))
    assert ok
    staff = StaffMatcher([("stf_1", photo_descriptors([photo.tobytes()]))])
    with_staff = _run(FaissFeatureStore(tmp_path / "a"), staff)
    assert [e.event for e in with_staff.events] == ["entry"]
    assert with_staff.stats.staff_tracks == 1
    # The same clip without enrolment: both are counted (the walk is seen, not missed).
    without = _run(FaissFeatureStore(tmp_path / "b"), None)
    assert sorted(e.event for e in without.events) == ["entry", "entry"]
    assert without.stats.staff_tracks == 0
    customer = with_staff.events[0]
    by_x = sorted(without.events, key=lambda e: e.ts)
    assert abs((customer.ts - by_x[1].ts).total_seconds()) < 0.4  # the astronaut's entry


def test_matcher_threshold_and_empty() -> None:
    a = np.zeros(128, dtype=np.float32)
    b = a.copy()
    b[0] = 0.59
    m = StaffMatcher([("s1", [a])])
    assert m.match(b) == "s1" and len(m) == 1
    b[0] = 0.61
    assert m.match(b) is None
    assert StaffMatcher([]).match(a) is None
    with pytest.raises(BadInput):
        StaffMatcher([], threshold=0)
