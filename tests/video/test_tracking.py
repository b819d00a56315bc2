"""Tracking and counting on the harder store-visit clips (groups, crossing paths, staff
loitering, a sign occluding, lighting changes, people returning), against ground truth."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tenpo.features.faiss_store import FaissFeatureStore
from tenpo.video.analyzer import Analyzer, AnalyzerConfig, Frame
from tenpo.video.audit import Crossing, audit, audit_days
from tenpo.video.detect import HogFaceDetector
from tenpo.video.embed import DlibResNetExtractor
from tenpo.video.line import EntranceLine
from tenpo.video.quality import LandmarkQualityChecker
from tenpo.video.synthetic import (
    Loiter,
    Walk,
    face_boxes,
    render,
    store_visit_scenario,
    truth,
    window,
)
from tenpo.video.track import IouTracker, KalmanTracker, ObjectTracker, Track

DAY1 = datetime(2026, 11, 2, 1, tzinfo=UTC)


def _track_ground_truth_boxes(
    tracker: ObjectTracker, frames: list[Frame], boxes: list[list[tuple[str, object]]]
) -> tuple[list[Track], dict[str, set[str]]]:
    """Feed the perfect detector's boxes; (tracks, labels each track was given)."""
    ended: list[Track] = []
    labels: dict[str, set[str]] = defaultdict(set)
    for frame, found in zip(frames, boxes, strict=True):
        by_box = {id(b): label for label, b in found}
        seen, gone = tracker.update([b for _, b in found], frame.ts, frame.image)  # type: ignore[misc]
        for t in seen:
            labels[t.track_id].add(by_box[id(t.box)])
        ended += gone
    return ended + tracker.flush(), labels


def _crossings(tracks: list[Track]) -> list[Crossing]:
    line = EntranceLine()
    return [
        Crossing(c.ts, c.event)
        for t in tracks
        if t.hits >= 2
        for c in line.crossings(t.path, 640, 480)
    ]


@pytest.mark.parametrize(("seed", "mirror"), [(0, False), (1, True)])
def test_kalman_tracker_keeps_every_identity_on_the_hard_scenario(seed: int, mirror: bool) -> None:
    people, scene, seconds = store_visit_scenario(seed, mirror=mirror)
    assert sum(isinstance(p, Walk) for p in people) == 16
    assert {p.label for p in people if isinstance(p, Loiter)} == {"staff"}
    # The frames detection sees at 15 FPS with detect_every=3.
    frames = list(render(people, seconds, start=DAY1, scene=scene, fps=5))
    boxes = [face_boxes(people, (f.ts - DAY1).total_seconds(), scene=scene) for f in frames]
    assert max(len(b) for b in boxes) >= 5  # five in the frame at once
    # The sign hides someone for a while: some walker is missing from the boxes mid-clip.
    assert any(len(b) < sum(p.center(14.5 + k / 5, 640, 480) is not None for p in people)
               for k, b in enumerate(boxes[72:92]))  # fmt: skip

    tracks, labels = _track_ground_truth_boxes(KalmanTracker(), frames, boxes)
    assert all(len(v) == 1 for v in labels.values()), "a track mixed two people"
    truth_crossings = [Crossing(ts, ev, who) for who, ev, ts in truth(people, DAY1)]
    report = audit(_crossings(tracks), truth_crossings, tolerance_s=0.5)
    assert (report.entry.truth, report.exit.truth) == (8, 8)
    assert (report.entry.matched, report.entry.predicted) == (8, 8)
    assert (report.exit.matched, report.exit.predicted) == (8, 8)

    # The IoU tracker on the same boxes swaps the two who cross paths and loses a crossing.
    old, old_labels = _track_ground_truth_boxes(IouTracker(), frames, boxes)
    assert any(len(v) > 1 for v in old_labels.values())
    worse = audit(_crossings(old), truth_crossings, tolerance_s=0.5)
    assert worse.entry.matched + worse.exit.matched < 16


def _run_day(
    store: FaissFeatureStore, people: list, scene: object, seconds: float, start: datetime
) -> tuple[list[Crossing], list[Crossing]]:
    analyzer = Analyzer(
        tenant_id="t1",
        camera_id="cam-1",
        detector=HogFaceDetector(),
        quality=LandmarkQualityChecker(),
        tracker=KalmanTracker(),
        extractor=DlibResNetExtractor(),
        store=store,
        config=AnalyzerConfig(),
    )
    for frame in render(people, seconds, start=start, scene=scene):  # type: ignore[arg-type]
        analyzer.process(frame)
    analyzer.finish()
    predicted = [Crossing(e.ts, e.event, e.person_id) for e in analyzer.events]
    return predicted, [Crossing(ts, ev, who) for who, ev, ts in truth(people, start)]


def test_counting_and_reidentification_floors_with_the_real_models(tmp_path: Path) -> None:
    """Day 1: the group of three abreast and two people crossing paths at the line. Day 2
    (mirrored): the light dims to 55 % while three enter, two of them back from day 1."""
    store = FaissFeatureStore(tmp_path)
    people, scene, _ = store_visit_scenario(3)
    day1 = window(people, scene, 0.0, 7.0)
    people2, scene2, _ = store_visit_scenario(4, mirror=True)
    day2 = window(people2, scene2, 19.0, 24.6)
    assert len(day1[0]) == 5 and len(day2[0]) == 3
    days = []
    for n, (p, s, secs) in enumerate((day1, day2)):
        start = DAY1 + timedelta(days=n)
        days.append((start.date(), *_run_day(store, p, s, secs, start)))
    overall, per_day = audit_days(days, tolerance_s=0.5)
    assert [d.entry.truth + d.exit.truth for d in per_day] == [5, 3]
    for figures in (overall.entry, overall.exit):
        assert figures.count_accuracy is not None and figures.count_accuracy >= 0.95
        assert figures.precision == figures.recall == 1.0
    assert overall.reid.same_person_same_id is not None
    assert overall.reid.same_person_same_id >= 0.9
    assert overall.reid.false_merge_rate is not None and overall.reid.false_merge_rate <= 0.01
    assert overall.reid.persons == overall.reid.person_ids == 5
    assert overall.reid_across_days is not None and overall.reid_across_days >= 0.9
