"""Video analyzer throughput on one core, before/after, with the counting-audit figures.

Clip: the first 12 s of the store-visit scenario (``tenpo.video.synthetic``): a group of
three entering abreast, two people crossing paths at the line, staff loitering by the door
while someone leaves; 640×480 at 15 FPS, real faces (scikit-image astronaut + LFW subset).

- baseline (same run): the analyzer as it was — dlib HOG over the whole frame and the IoU
  tracker on every 3rd frame, the 2 best faces of a track embedded (dlib ResNet);
- value: the default analyzer — detection on every 4th frame, HOG only where the frame
  moved and around live tracks (``tenpo.video.motion``; whole frame every 10th round), the
  Kalman + HOG-appearance tracker (predicting in between), the best face of a track embedded.

Pinned to one CPU core (``sched_setaffinity``; OpenCV single-threaded). FPS = frames ÷ the
process's CPU seconds (the machine is shared: CPU time is what one core spends, wall time
also counts the waiting); best of ``BENCH_REPEATS`` (3). Real-time factor = FPS ÷ 15. The
audit figures (count accuracy, same-person-same-ID, false merges) of both runs are reported.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from datetime import UTC, datetime

import cv2

from bench._common import report
from tenpo.features.faiss_store import FaissFeatureStore
from tenpo.video.analyzer import Analyzer, AnalyzerConfig, Frame
from tenpo.video.audit import AuditReport, Crossing, audit
from tenpo.video.detect import HogFaceDetector
from tenpo.video.embed import DlibResNetExtractor
from tenpo.video.quality import LandmarkQualityChecker
from tenpo.video.synthetic import render, store_visit_scenario, truth, window
from tenpo.video.track import IouTracker, KalmanTracker, ObjectTracker

FPS = 15
SECONDS = 12.0
START = datetime(2026, 11, 2, 1, tzinfo=UTC)
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
# BENCH_VIDEO_SEEDS=1,2,3: also audit the whole 33-s scenario on two days (the second
# mirrored) per seed with the default analyzer (about 15 s of CPU per seed).
SEEDS = [int(v) for v in os.environ.get("BENCH_VIDEO_SEEDS", "").split(",") if v.strip()]
TARGET_RATIO = 2.0
TARGET_FPS = 30.0


def _run(
    frames: list[Frame], tracker: ObjectTracker, config: AnalyzerConfig
) -> tuple[float, float, Analyzer]:
    analyzer = Analyzer(
        tenant_id="bench",
        camera_id="cam-1",
        detector=HogFaceDetector(),
        quality=LandmarkQualityChecker(),
        tracker=tracker,
        extractor=DlibResNetExtractor(),
        store=FaissFeatureStore(tempfile.mkdtemp(prefix="tenpo-bench-")),
        config=config,
    )
    c0, w0 = time.process_time(), time.perf_counter()
    for frame in frames:
        analyzer.process(frame)
    analyzer.finish()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return len(frames) / cpu, len(frames) / wall, analyzer


def _figures(analyzer: Analyzer, expected: list[Crossing]) -> dict[str, object]:
    got = [Crossing(e.ts, e.event, e.person_id) for e in analyzer.events]
    r: AuditReport = audit(got, expected, tolerance_s=0.5)
    return {
        "entry_count_accuracy": r.entry.count_accuracy,
        "exit_count_accuracy": r.exit.count_accuracy,
        "precision": [r.entry.precision, r.exit.precision],
        "recall": [r.entry.recall, r.exit.recall],
        "same_person_same_id": r.reid.same_person_same_id,
        "false_merge_rate": r.reid.false_merge_rate,
        "embeddings": analyzer.stats.embeddings,
        "stage_ms_per_frame": {
            k: round(v * 1000 / analyzer.stats.frames, 2)
            for k, v in sorted(analyzer.stats.seconds.items())
        },
    }


def _full_scenario(seed: int) -> dict[str, object]:
    """Audit figures of the whole scenario on two days with the default analyzer."""
    from datetime import timedelta

    from tenpo.video.audit import audit_days
    from tenpo.video.bulk import Camera, build_analyzer

    store = FaissFeatureStore(tempfile.mkdtemp(prefix="tenpo-bench-"))
    days = []
    for d in range(2):
        start = START + timedelta(days=d)
        people, scene, seconds = store_visit_scenario(seed * 10 + d, mirror=bool(d))
        analyzer = build_analyzer(Camera("bench", "cam-1"), store)
        for frame in render(people, seconds, start=start, scene=scene):
            analyzer.process(frame)
        analyzer.finish()
        got = [Crossing(e.ts, e.event, e.person_id) for e in analyzer.events]
        days.append(
            (start.date(), got, [Crossing(t, ev, who) for who, ev, t in truth(people, start)])
        )
    r, _ = audit_days(days, tolerance_s=0.5)
    return {
        "seed": seed,
        "crossings": r.entry.truth + r.exit.truth,
        "entry_count_accuracy": r.entry.count_accuracy,
        "exit_count_accuracy": r.exit.count_accuracy,
        "precision": [r.entry.precision, r.exit.precision],
        "recall": [r.entry.recall, r.exit.recall],
        "same_person_same_id": r.reid.same_person_same_id,
        "false_merge_rate": r.reid.false_merge_rate,
        "reid_across_days": r.reid_across_days,
    }


def main() -> None:
    """Run the old and the default analyzer over the same clip on one core."""
    logging.disable(logging.INFO)
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    people, scene, _ = store_visit_scenario(1)
    people, scene, seconds = window(people, scene, 0.0, SECONDS)
    expected = [Crossing(ts, ev, who) for who, ev, ts in truth(people, START)]
    old_config = AnalyzerConfig(detect_every=3, embed_per_track=2, motion_regions=False)
    try:
        frames = list(render(people, seconds, start=START, fps=FPS, scene=scene))
        best_old = best_new = (0.0, 0.0)
        for _ in range(REPEATS):
            cpu, wall, old = _run(frames, IouTracker(), old_config)
            best_old = max(best_old, (cpu, wall))
            cpu, wall, new = _run(frames, KalmanTracker(), AnalyzerConfig())
            best_new = max(best_new, (cpu, wall))
    finally:
        cv2.setNumThreads(threads)
        os.sched_setaffinity(0, affinity)
        logging.disable(logging.NOTSET)
    fps, baseline_fps = best_new[0], best_old[0]
    report(
        "video_analyzer",
        fps,
        "frames/s per core (CPU time)",
        baseline_fps,
        TARGET_RATIO,
        floor=TARGET_FPS,
        real_time_factor=round(fps / FPS, 2),
        baseline_real_time_factor=round(baseline_fps / FPS, 2),
        wall_fps=round(best_new[1], 1),
        baseline_wall_fps=round(best_old[1], 1),
        clip=f"store-visit scenario 0-{SECONDS:g} s, 640x480, {FPS} FPS, {len(frames)} frames,"
        f" {len(expected)} crossings",
        after=_figures(new, expected),
        before=_figures(old, expected),
        full_scenario=[_full_scenario(seed) for seed in SEEDS],
        detect_every={"before": 3, "after": AnalyzerConfig().detect_every},
        cores=1,
        repeats=REPEATS,
    )


if __name__ == "__main__":
    main()
