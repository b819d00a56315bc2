"""Video analyzer throughput on one core: frames/s, per-stage ms and real-time factor.

Clip: 640×480 at 15 FPS, 12 s, synthetic entrance scene with 0–5 faces of real people
(scikit-image astronaut + LFW subset) walking through the entrance line.

- tenpo's analyzer (what is measured): every frame is decoded into the pipeline and
  counted; dlib HOG face detection at full resolution, the quality check (size, exposure,
  Laplacian sharpness, 5-point landmarks) and the tracker run on every 3rd frame (5 times a
  second); the 128-d ResNet embedding runs only on the 2 best faces of each track, when the
  track ends; then one Feature DB search per track.
- baseline (same run): detection and embedding of every face on every frame.

Pinned to one CPU core (``sched_setaffinity``; OpenCV single-threaded). Real-time factor =
frames/s ÷ 15 (target ≥ 1.0).
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
from tenpo.video.analyzer import Analyzer, AnalyzerConfig
from tenpo.video.detect import HogFaceDetector
from tenpo.video.embed import DlibResNetExtractor
from tenpo.video.quality import LandmarkQualityChecker
from tenpo.video.synthetic import Walk, render
from tenpo.video.track import IouTracker

FPS = 15
SECONDS = 12.0
START = datetime(2026, 11, 2, 1, tzinfo=UTC)
# The analyzer's defaults (AnalyzerConfig); overridable to explore the trade-off.
DETECT_EVERY = int(os.environ.get("BENCH_DETECT_EVERY", "3"))
EMBED_PER_TRACK = int(os.environ.get("BENCH_EMBED_PER_TRACK", "2"))

# Up to five faces at once, none at the start and the end.
WALKS = [
    Walk("astronaut", "entry", 1.0, 3.0, x=0.12),
    Walk("lfw0", "exit", 1.5, 3.0, x=0.31),
    Walk("lfw1", "entry", 2.0, 3.0, x=0.5),
    Walk("lfw18", "exit", 2.5, 3.0, x=0.69),
    Walk("lfw46", "entry", 3.0, 3.0, x=0.88),
    Walk("astronaut", "exit", 7.0, 2.5, x=0.3, scale=0.95),
    Walk("lfw1", "exit", 7.5, 2.5, x=0.7),
]


def _analyzer(detect_every: int, embed_per_track: int) -> Analyzer:
    return Analyzer(
        tenant_id="bench",
        camera_id="cam-1",
        detector=HogFaceDetector(),
        quality=LandmarkQualityChecker(),
        tracker=IouTracker(),
        extractor=DlibResNetExtractor(),
        store=FaissFeatureStore(tempfile.mkdtemp(prefix="tenpo-bench-")),
        config=AnalyzerConfig(detect_every=detect_every, embed_per_track=embed_per_track),
    )


def main() -> None:
    """Run the analyzer and the every-frame baseline over the same clip on one core."""
    logging.disable(logging.INFO)
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        frames = list(render(WALKS, SECONDS, start=START, fps=FPS))

        detector, extractor = HogFaceDetector(), DlibResNetExtractor()
        t0 = time.perf_counter()
        for frame in frames:
            for box in detector.detect(frame.image):
                extractor.extract(frame.image, box)
        baseline_fps = len(frames) / (time.perf_counter() - t0)

        analyzer = _analyzer(DETECT_EVERY, EMBED_PER_TRACK)
        t0 = time.perf_counter()
        for frame in frames:
            analyzer.process(frame)
        analyzer.finish()
        fps = len(frames) / (time.perf_counter() - t0)
    finally:
        cv2.setNumThreads(threads)
        os.sched_setaffinity(0, affinity)
        logging.disable(logging.NOTSET)
    stats = analyzer.stats
    stage_ms = {k: round(v * 1000 / stats.frames, 2) for k, v in sorted(stats.seconds.items())}
    entries = sum(e.event == "entry" for e in analyzer.events)
    true_entries = sum(w.direction == "entry" for w in WALKS)
    report(
        "video_analyzer",
        fps,
        "frames/s",
        baseline_fps,
        1.0,
        real_time_factor=round(fps / FPS, 2),
        real_time_target=1.0,
        real_time_met=fps / FPS >= 1.0,
        baseline_real_time_factor=round(baseline_fps / FPS, 2),
        stage_ms_per_frame=stage_ms,
        clip=f"640x480, {FPS} FPS, {SECONDS:g} s, 0-5 faces, {len(WALKS)} passes",
        every_frame="decode + counting (the detection schedule)",
        every_nth_frame="HOG detection (full 640x480), quality check, tracker",
        per_track="ResNet embedding of the best faces, one Feature DB search",
        detect_frames=stats.detect_frames,
        embeddings=stats.embeddings,
        events=f"{entries} entries, {len(analyzer.events) - entries} exits",
        truth=f"{true_entries} entries, {len(WALKS) - true_entries} exits",
        distinct_persons=len({e.person_id for e in analyzer.events}),
        truth_distinct_persons=len({w.face for w in WALKS}),
        detect_every=DETECT_EVERY,
        embed_per_track=EMBED_PER_TRACK,
        rejected=dict(analyzer.quality.rejections),
        cores=1,
    )


if __name__ == "__main__":
    main()
