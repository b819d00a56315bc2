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
from tenpo.video.enrol import NoFace, StaffMatcher, UnsupportedImage, photo_descriptors
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
    features = FaissFeatureStore(tmp_path / "a")
    with_staff = _run(features, staff)
    assert [e.event for e in with_staff.events] == ["entry"]
    assert with_staff.stats.staff_tracks == 1
    assert features.count("t1") == 1  # the customer only: staff get no PersonID
    # The same clip without enrolment: both are counted (the walk is seen, not missed).
    plain = FaissFeatureStore(tmp_path / "b")
    without = _run(plain, None)
    assert plain.count("t1") == 2
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


def test_photo_formats_and_hostile_bytes() -> None:
    sprite = face_sprite("astronaut")
    encoded = {ext: cv2.imencode(ext, sprite)[1].tobytes() for ext in (".jpg", ".png", ".webp")}
    lossless = cv2.imencode(".webp", sprite, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
    vectors = photo_descriptors([*encoded.values(), lossless])
    assert len(vectors) == 4
    assert max(float(np.linalg.norm(v - vectors[0])) for v in vectors) < 0.3  # same face
    # A PNG header claiming 20000×20000 pixels (a decompression bomb): refused unread.
    png = encoded[".png"]
    bomb = png[:16] + (20000).to_bytes(4, "big") * 2 + png[24:]
    with pytest.raises(BadInput, match="over 50000000 pixels"):
        photo_descriptors([bomb])
    with pytest.raises(UnsupportedImage, match="damaged"):
        photo_descriptors([encoded[".jpg"][: len(encoded[".jpg"]) // 3]])
    bmp = cv2.imencode(".bmp", sprite)[1].tobytes()
    with pytest.raises(UnsupportedImage, match="not a JPEG/PNG/WebP"):
        photo_descriptors([bmp])
    with pytest.raises(NoFace, match="photo 'wall.png': no face"):
        wall = cv2.imencode(".png", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()
        photo_descriptors([encoded[".jpg"], wall], names=["me.jpg", "wall.png"])
    with pytest.raises(BadInput, match="at most 10"):
        photo_descriptors([png] * 11)
