"""Wiring the analyzer to the platform: build it, feed it lake chunks, land its events.

- :func:`build_analyzer`: the default stages (dlib HOG or Haar, landmark quality, Kalman +
  appearance tracker, dlib ResNet) for one camera.
- :func:`analyze_chunks` / :func:`analyze_day` (bulk mode): decode the camera's chunks of a
  business date from ``video/...`` in time order and run them through one analyzer, so a
  track that spans a chunk boundary stays one track.
- :func:`follow_chunks` (bus-driven): analyze the chunks announced on ``video.chunks``,
  each camera's open tracks carried from one chunk to the next.
- :func:`land_events`: the events as JSONL through the landing zone, source
  ``visitor_events``; the streamer then loads them into ``raw_visitor_events``. The object
  id is the content hash, so re-processing the same chunks lands nothing new.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from tenpo.bus.base import Delivery, EventBus
from tenpo.core.errors import BadInput
from tenpo.features.base import FeatureStore
from tenpo.lake.base import Lake
from tenpo.lake.landing import Landed, LandingZone
from tenpo.video.analyzer import Analyzer, AnalyzerConfig, Frame
from tenpo.video.codec import decode_mp4
from tenpo.video.detect import FaceDetector, HaarFaceDetector, HogFaceDetector
from tenpo.video.embed import DlibResNetExtractor
from tenpo.video.enrol import StaffMatcher
from tenpo.video.events import VisitorEvent
from tenpo.video.line import EntranceLine
from tenpo.video.quality import LandmarkQualityChecker, QualityThresholds
from tenpo.video.recorder import SOURCE, VIDEO_CHUNKS, chunk_start
from tenpo.video.track import KalmanTracker

__all__ = [
    "Camera",
    "analyze_chunks",
    "analyze_day",
    "build_analyzer",
    "chunk_keys",
    "follow_chunks",
    "land_events",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Camera:
    """What the analyzer needs to know about an entrance camera."""

    tenant_id: str
    camera_id: str
    timezone: str = "Asia/Tokyo"
    line: EntranceLine = EntranceLine()
    staff: StaffMatcher | None = None  # the store's enrolled staff (never counted)


def build_analyzer(
    camera: Camera,
    store: FeatureStore,
    *,
    detector: Literal["hog", "haar"] = "hog",
    detect_every: int = 4,
    detect_scale: float = 1.0,
    thresholds: QualityThresholds | None = None,
) -> Analyzer:
    """An analyzer with the production stages for ``camera``."""
    det: FaceDetector
    if detector == "hog":
        det = HogFaceDetector(scale=detect_scale)
    elif detector == "haar":
        det = HaarFaceDetector(scale=detect_scale)
    else:
        raise BadInput(f"unknown face detector {detector!r}; expected 'hog' or 'haar'")
    return Analyzer(
        tenant_id=camera.tenant_id,
        camera_id=camera.camera_id,
        detector=det,
        quality=LandmarkQualityChecker(thresholds),
        tracker=KalmanTracker(),
        extractor=DlibResNetExtractor(),
        store=store,
        line=camera.line,
        config=AnalyzerConfig(detect_every=detect_every),
        staff=camera.staff,
    )


def chunk_keys(lake: Lake, tenant_id: str, camera_id: str, day: date) -> list[str]:
    """The camera's chunk keys of a business date, in time order."""
    prefix = f"video/tenant={tenant_id}/camera={camera_id}/date={day.isoformat()}/"
    return sorted((k for k in lake.list(prefix) if k.endswith(".mp4")), key=chunk_start)


def analyze_chunks(lake: Lake, analyzer: Analyzer, keys: Iterable[str]) -> list[VisitorEvent]:
    """Run the chunks through ``analyzer`` in order and finish it; every event emitted."""
    before = len(analyzer.events)
    for key in keys:
        _feed_chunk(lake, analyzer, key)
    analyzer.finish()
    return analyzer.events[before:]


def land_events(
    landing: LandingZone, tenant_id: str, events: list[VisitorEvent], day: date
) -> Landed | None:
    """Land ``events`` as one JSONL object (source ``visitor_events``); None when empty."""
    if not events:
        return None
    body = "".join(
        json.dumps(e.model_dump(mode="json"), separators=(",", ":")) + "\n"
        for e in sorted(events, key=lambda e: (e.ts, e.track_id))
    ).encode()
    return landing.land(
        "visitor_events", tenant_id, body, "jsonl", day=day, content_type="application/x-ndjson"
    )


def analyze_day(
    lake: Lake, landing: LandingZone, analyzer: Analyzer, day: date
) -> tuple[list[VisitorEvent], Landed | None]:
    """Bulk mode: analyze the camera's chunks of ``day`` and land the events."""
    keys = chunk_keys(lake, analyzer.tenant_id, analyzer.camera_id, day)
    if not keys:
        raise BadInput(
            f"no video chunks for camera {analyzer.camera_id!r} of tenant"
            f" {analyzer.tenant_id!r} on {day}"
        )
    events = analyze_chunks(lake, analyzer, keys)
    return events, land_events(landing, analyzer.tenant_id, events, day)


@dataclass
class _Run:
    """A camera's analyzer in bus-driven mode, carried from one chunk to the next."""

    analyzer: Analyzer
    held: list[Delivery] = field(default_factory=list)  # analyzed, not yet acknowledged
    events: list[VisitorEvent] = field(default_factory=list)  # of the held chunks
    day: date | None = None


def _feed_chunk(lake: Lake, analyzer: Analyzer, key: str) -> list[VisitorEvent]:
    """Run one chunk through ``analyzer`` without finishing it; the events it emitted."""
    before = len(analyzer.events)
    start = chunk_start(key)
    frames = 0
    for t, image in decode_mp4(lake.get(key)):
        analyzer.process(Frame(image, start + timedelta(seconds=t)))
        frames += 1
    log.info("analyzed %s: %d frames", key, frames)
    return analyzer.events[before:]


def follow_chunks(
    bus: EventBus,
    lake: Lake,
    landing: LandingZone,
    make_analyzer: Callable[[str, str], Analyzer],
    *,
    consumer: str = "video-analyzer",
    timeout: float = 1.0,
    max_batches: int | None = None,
    max_gap_s: float = 2.0,
    max_held: int = 3,
) -> int:
    """Bus-driven mode: analyze chunks announced on ``video.chunks`` until the topic is idle.

    ``make_analyzer(tenant_id, camera_id)`` gives the analyzer of a camera. A camera's
    analyzer is kept from one chunk to the next, so a track open at the end of a chunk
    continues in the next one (a person crossing the line at a chunk boundary is one track,
    one event). The chunk's events are landed, and the chunk acknowledged, once no track is
    open any more: a crash before that re-delivers every chunk since the last quiet moment,
    which a fresh analyzer re-analyzes from an empty tracker — nothing lost, nothing landed
    twice. The open tracks are closed (and the chunks acknowledged) when the next chunk does
    not follow on within ``max_gap_s`` (or is older), after ``max_held`` chunks without a
    quiet moment (``ack_wait`` of the bus must cover that many chunks' analysis), and when
    the topic goes idle. Returns the number of chunks analyzed.
    """
    if max_held < 1:
        raise BadInput(f"max_held must be ≥ 1, got {max_held}")
    runs: dict[tuple[str, str], _Run] = {}

    def settle(run: _Run, *, close: bool) -> None:
        if close:
            run.events += run.analyzer.finish()
        if run.events and run.day is not None:
            land_events(landing, run.analyzer.tenant_id, run.events, run.day)
        for held in run.held:
            bus.ack(held)
        run.held, run.events = [], []

    done = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        deliveries = bus.fetch(VIDEO_CHUNKS, consumer, max_events=10, timeout=timeout)
        if not deliveries:
            break
        batches += 1
        for d in deliveries:
            payload = d.payload
            if payload.get("source") != SOURCE:
                bus.ack(d)
                continue
            tenant = str(payload["tenant_id"])
            camera = str(payload.get("meta", {}).get("camera_id", ""))
            key = str(payload["key"])
            start = chunk_start(key)
            run = runs.get((tenant, camera))
            if run is not None:
                last = run.analyzer.last_ts
                if last is None or start < last or (start - last).total_seconds() > max_gap_s:
                    settle(run, close=True)
                    run = None
            if run is None:
                run = runs[(tenant, camera)] = _Run(make_analyzer(tenant, camera))
            run.events += _feed_chunk(lake, run.analyzer, key)
            run.held.append(d)
            run.day = date.fromisoformat(payload["business_date"])
            if run.analyzer.tracker.open_tracks() == 0:
                settle(run, close=False)
            elif len(run.held) >= max_held:
                settle(run, close=True)
            done += 1
    for run in runs.values():
        settle(run, close=True)
    return done
