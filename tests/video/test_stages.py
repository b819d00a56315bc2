"""Analyzer stages on their own: tracker, entrance line, quality checker, detectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tenpo.core.errors import BadInput
from tenpo.video.analyzer import Analyzer, AnalyzerConfig, Frame
from tenpo.video.detect import Box, FakeFaceDetector, HaarFaceDetector, HogFaceDetector
from tenpo.video.embed import FakeFeatureExtractor
from tenpo.video.line import EntranceLine
from tenpo.video.quality import FakeQualityChecker, LandmarkQualityChecker, QualityThresholds
from tenpo.video.synthetic import Walk, render
from tenpo.video.track import IouTracker

T0 = datetime(2026, 11, 2, 1, tzinfo=UTC)


def ts(i: int) -> datetime:
    return T0 + timedelta(seconds=i / 15)


def box_at(x: float, y: float, size: int = 80) -> Box:
    return Box(int(x - size / 2), int(y - size / 2), int(x + size / 2), int(y + size / 2))


def test_tracker_keeps_identity_through_a_short_occlusion() -> None:
    tracker = IouTracker(max_missed=3)
    ids = []
    for i in range(12):
        hidden = i in (5, 6)  # two frames without the face
        seen, ended = tracker.update([] if hidden else [box_at(100, 50 + 20 * i)], ts(i))
        assert ended == []
        ids += [t.track_id for t in seen]
    assert set(ids) == {"t1"}
    assert len(tracker.live[0].path) == 10


def test_tracker_ends_a_lost_track_and_separates_two_faces() -> None:
    tracker = IouTracker(max_missed=1)
    seen, _ = tracker.update([box_at(100, 100), box_at(400, 100)], ts(0))
    assert [t.track_id for t in seen] == ["t1", "t2"]
    seen, _ = tracker.update([box_at(405, 110), box_at(102, 108)], ts(1))
    assert sorted((t.track_id, t.box.center[0] > 250) for t in seen) == [
        ("t1", False),
        ("t2", True),
    ]
    tracker.update([], ts(2))
    _, ended = tracker.update([], ts(3))
    assert sorted(t.track_id for t in ended) == ["t1", "t2"]
    assert tracker.flush() == []


def test_line_direction_and_margin() -> None:
    line = EntranceLine()  # horizontal at y = 0.5: downwards is an entry
    down = [(ts(i), 320.0, 100.0 + 40 * i) for i in range(10)]
    assert [c.event for c in line.crossings(down, 640, 480)] == ["entry"]
    back = down + [(ts(20 + i), 320.0, 460.0 - 40 * i) for i in range(10)]
    assert [c.event for c in line.crossings(back, 640, 480)] == ["entry", "exit"]
    jitter = [(ts(i), 320.0, 240.0 + (3 if i % 2 else -3)) for i in range(10)]
    assert line.crossings(jitter, 640, 480) == []  # inside the dead band
    flipped = EntranceLine(a=(1.0, 0.5), b=(0.0, 0.5))
    assert [c.event for c in flipped.crossings(down, 640, 480)] == ["exit"]
    vertical = EntranceLine.from_config({"line": {"a": [0.5, 0], "b": [0.5, 1]}})
    right = [(ts(i), 100.0 + 60 * i, 240.0) for i in range(10)]
    assert [c.event for c in vertical.crossings(right, 640, 480)] == ["exit"]


def test_line_config_errors() -> None:
    assert EntranceLine.from_config(None) == EntranceLine()
    with pytest.raises(BadInput, match="within 0..1"):
        EntranceLine.from_config({"line": {"a": [0, 2], "b": [1, 0.5]}})
    with pytest.raises(BadInput, match="must differ"):
        EntranceLine.from_config({"line": {"a": [0.2, 0.2], "b": [0.2, 0.2]}})


def _clip(walk: Walk, at: float = 1.0) -> np.ndarray:
    frames = list(render([walk], walk.duration_s, start=T0))
    return frames[int(at * 15)].image


def test_quality_rejects_tiny_blurred_dark_and_accepts_clean() -> None:
    checker = LandmarkQualityChecker()
    clean = _clip(Walk("astronaut", "entry"))
    (face,) = HogFaceDetector().detect(clean)
    assert checker.check(clean, face).accepted
    tiny = Box(face.left, face.top, face.left + 30, face.top + 30)
    assert checker.check(clean, tiny).reason == "too_small"
    blurred = _clip(Walk("astronaut", "entry", blur_sigma=4))
    assert checker.check(blurred, face).reason == "blurred"
    dark = _clip(Walk("astronaut", "entry", brightness=0.15))
    assert checker.check(dark, face).reason == "too_dark"
    flat = np.full_like(clean, 128)
    assert checker.check(flat, face).reason == "low_contrast"
    assert checker.accepted == 1
    assert dict(checker.rejections) == {
        "too_small": 1,
        "blurred": 1,
        "too_dark": 1,
        "low_contrast": 1,
    }
    lenient = LandmarkQualityChecker(QualityThresholds(min_sharpness=0, min_size=20))
    assert lenient.check(blurred, face).accepted


def test_quality_frontalness_threshold_applies() -> None:
    clean = _clip(Walk("astronaut", "entry"))
    (face,) = HogFaceDetector().detect(clean)
    strict = LandmarkQualityChecker(QualityThresholds(max_yaw=0.01))
    assert strict.check(clean, face).reason == "not_frontal"
    assert LandmarkQualityChecker(QualityThresholds(max_roll_deg=30)).check(clean, face).accepted


def test_detectors_find_the_face_where_it_is() -> None:
    image = _clip(Walk("astronaut", "entry", x=0.3), at=1.0)
    expect_x, expect_y = 0.3 * 640, 240
    for det in (HogFaceDetector(), HaarFaceDetector(), HogFaceDetector(scale=2.0, upsample=0)):
        boxes = det.detect(image)
        assert len(boxes) == 1, det
        cx, cy = boxes[0].center
        assert abs(cx - expect_x) < 30 and abs(cy - expect_y) < 50
    assert HogFaceDetector().detect(np.zeros((480, 640, 3), np.uint8)) == []
    with pytest.raises(BadInput, match="H×W×3"):
        HogFaceDetector().detect(np.zeros((480, 640), np.uint8))
    with pytest.raises(BadInput, match="scale"):
        HogFaceDetector(scale=0)


def test_analyzer_with_fakes_counts_crossings_and_embeds_best_frames(tmp_path: Path) -> None:
    from tenpo.features.faiss_store import FaissFeatureStore

    # Two faces: one walks down (entry), one up (exit); detection every 2nd frame.
    def boxes(call: int) -> list[Box]:
        return [box_at(150, 60 + 25 * call), box_at(480, 420 - 25 * call, size=100)]

    extractor = FakeFeatureExtractor(lambda img, b: int(img.mean() > 128))
    analyzer = Analyzer(
        tenant_id="t1",
        camera_id="cam-1",
        detector=FakeFaceDetector(boxes),
        quality=FakeQualityChecker(),
        tracker=IouTracker(),
        extractor=extractor,
        store=FaissFeatureStore(tmp_path),
        config=AnalyzerConfig(detect_every=2, embed_per_track=3),
    )
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, 320:] = 200  # the right-hand person "looks" different
    for i in range(30):
        analyzer.process(Frame(image, ts(i)))
    events = analyzer.finish()
    assert sorted(e.event for e in events) == ["entry", "exit"]
    assert analyzer.stats.frames == 30 and analyzer.stats.detect_frames == 15
    assert extractor.calls == 6  # 3 best frames × 2 tracks, not every frame
    assert len({e.person_id for e in events}) == 2
    entry = next(e for e in events if e.event == "entry")
    # Past y = 240 + margin at detection call 8 (frame 16); the line itself (y = 240) was cut
    # between call 6 (y = 210, frame 12) and call 8 (y = 260): 30/50 of the way, frame 14.4.
    assert entry.ts == T0 + timedelta(seconds=14.4 / 15)
    with pytest.raises(BadInput, match="older"):
        analyzer.process(Frame(image, ts(0)))
    with pytest.raises(BadInput, match="timezone"):
        analyzer.process(Frame(image, datetime(2026, 11, 2)))


def test_motion_regions_find_what_the_whole_frame_finds_and_skip_still_frames() -> None:
    from tenpo.video.motion import MotionRegions

    walks = [Walk("astronaut", "exit", 0.0, 2.0, x=0.18), Walk("lfw0", "entry", 0.3, 2.0, x=0.8)]
    frames = list(render(walks, 2.0, start=T0, fps=5))
    detector, motion, tracker = HogFaceDetector(), MotionRegions(full_every=100), IouTracker()
    searched = 0
    for frame in frames:
        regions = motion.regions(frame.image, [t.box for t in tracker.live])
        whole = detector.detect(frame.image)
        if regions is None:
            found = whole
        else:
            found = detector.detect_regions(frame.image, regions)
            searched += sum(r.width * r.height for r in regions)
            for r in regions:  # aligned to dlib's 8-px HOG cells, disjoint
                assert r.left % 8 == r.top % 8 == 0
        # The same faces (a box may differ by a pyramid level's rounding: a few px).
        assert len(found) == len(whole)
        for b in whole:
            assert any(abs(b.center[0] - f.center[0]) + abs(b.center[1] - f.center[1]) < 20
                       for f in found)  # fmt: skip
        tracker.update(found, frame.ts)
    assert motion.full_rounds == 1  # only the first frame: nothing to compare with
    assert searched < 0.6 * 640 * 480 * (len(frames) - 1)

    still = frames[-1].image.copy()
    still[:] = 120
    quiet = MotionRegions()
    assert quiet.regions(still, []) is None  # first look: whole frame
    assert quiet.regions(still, []) == []  # nothing moved, nobody tracked: no detection
    around = quiet.regions(still, [box_at(320, 240)])
    assert around is not None and len(around) == 1 and around[0].width >= 160
    dimmed = (still * 0.5).astype(np.uint8)
    assert quiet.regions(dimmed, []) is None  # the light changed everywhere: whole frame
