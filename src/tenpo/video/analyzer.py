"""The analyzer pipeline: detect → quality → track → embed (best frames) → identify → events.

:class:`Analyzer` takes frames one at a time (:meth:`Analyzer.process`, streaming mode: the
recorder's frames as they come; bulk mode feeds decoded lake chunks through the same
method). Per frame:

- every frame: counted, and its timestamp advances the clock;
- every ``detect_every``-th frame: face detection (optionally on a downscaled copy; by
  default only in the regions that moved and around live tracks, :mod:`tenpo.video.motion`),
  quality check of each face, tracker update, and the best faces of each track kept as
  small crops in memory (never written anywhere);
- when a track ends (lost for the tracker's ``max_missed`` rounds, or at :meth:`finish`):
  the ``embed_per_track`` best crops are embedded, the mean vector is identified in the
  tenant's Feature DB (PersonID, new when unmatched), the crops are dropped, and one
  visitor event is emitted per crossing of the entrance line — unless the vector matches an
  enrolled member of the store's staff (:class:`~tenpo.video.enrol.StaffMatcher`): staff
  tracks emit nothing and get no PersonID (counted in ``Stats.staff_tracks``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tenpo.core.errors import BadInput
from tenpo.features.base import FeatureStore
from tenpo.video.detect import Box, FaceDetector, Image, check_frame
from tenpo.video.embed import FeatureExtractor
from tenpo.video.enrol import StaffMatcher
from tenpo.video.events import VisitorEvent
from tenpo.video.line import EntranceLine
from tenpo.video.motion import MotionRegions
from tenpo.video.quality import FaceQualityChecker
from tenpo.video.track import ObjectTracker, Track

__all__ = ["Analyzer", "AnalyzerConfig", "Frame"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One video frame (BGR uint8) and its capture time (timezone-aware)."""

    image: Image
    ts: datetime


class AnalyzerConfig(BaseModel):
    """How often the expensive stages run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detect_every: int = Field(
        4,
        ge=1,
        description="Run detection on every N-th frame (4 at 15 FPS: the Kalman tracker"
        " predicts in between; 5 loses a crossing on the store-visit scenario).",
    )
    embed_per_track: int = Field(
        1,
        ge=1,
        description="Best faces of a track to embed (1: the audit figures of the store-visit"
        " scenario are the same as with 2, at half the embedding time).",
    )
    motion_regions: bool = Field(
        True,
        description="Detect only where the frame changed and around live tracks"
        " (tenpo.video.motion); the whole frame every full_every-th detection round.",
    )
    full_every: int = Field(10, ge=1, description="Whole-frame detection every N rounds.")
    min_track_hits: int = Field(2, ge=1, description="Detections before a track counts.")
    crop_margin: float = Field(0.5, ge=0, description="Kept crop = box grown by this fraction.")


@dataclass
class _Candidate:
    score: float
    crop: Image
    box: Box  # in crop coordinates


@dataclass
class _TrackState:
    best: list[_Candidate] = field(default_factory=list)


@dataclass
class Stats:
    """Counters and per-stage wall time (seconds) of an analyzer run."""

    frames: int = 0
    detect_frames: int = 0
    faces: int = 0
    tracks: int = 0
    embeddings: int = 0
    events: int = 0
    staff_tracks: int = 0  # tracks matched to enrolled staff: never counted
    searched_pixels: int = 0  # searched by whole-frame detection
    region_pixels: int = 0  # searched by detection in motion regions
    seconds: Counter[str] = field(default_factory=Counter)


class Analyzer:
    """Runs the pipeline for one camera of one tenant and emits visitor events."""

    def __init__(
        self,
        *,
        tenant_id: str,
        camera_id: str,
        detector: FaceDetector,
        quality: FaceQualityChecker,
        tracker: ObjectTracker,
        extractor: FeatureExtractor,
        store: FeatureStore,
        line: EntranceLine | None = None,
        config: AnalyzerConfig | None = None,
        on_event: Callable[[VisitorEvent], None] | None = None,
        staff: StaffMatcher | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.camera_id = camera_id
        self.detector = detector
        self.quality = quality
        self.tracker = tracker
        self.extractor = extractor
        self.store = store
        self.line = line or EntranceLine()
        self.config = config or AnalyzerConfig()
        self.on_event = on_event
        self.staff = staff if staff is not None and len(staff) else None
        self.stats = Stats()
        self.events: list[VisitorEvent] = []
        self._states: dict[str, _TrackState] = defaultdict(_TrackState)
        self._size: tuple[int, int] | None = None
        self._session = ""
        self._last_ts: datetime | None = None
        self._motion = MotionRegions(full_every=self.config.full_every)

    def process(self, frame: Frame) -> list[VisitorEvent]:
        """Feed one frame; the visitor events of tracks that ended on this frame."""
        image = check_frame(frame.image)
        if frame.ts.tzinfo is None:
            raise BadInput("frame timestamps must be timezone-aware")
        if self._last_ts is not None and frame.ts < self._last_ts:
            raise BadInput(f"frame at {frame.ts} is older than the previous one ({self._last_ts})")
        self._last_ts = frame.ts
        if self._size is None:
            self._size = (image.shape[1], image.shape[0])
            self._session = frame.ts.strftime("%Y%m%dT%H%M%S")
        self.stats.frames += 1
        if (self.stats.frames - 1) % self.config.detect_every:
            return []
        self.stats.detect_frames += 1
        clock = time.perf_counter
        t0 = clock()
        regions = (
            self._motion.regions(image, self.tracker.boxes())
            if self.config.motion_regions
            else None
        )
        if regions is None:
            boxes = self.detector.detect(image)
        else:
            self.stats.region_pixels += sum(r.width * r.height for r in regions)
            boxes = self.detector.detect_regions(image, regions) if regions else []
        self.stats.searched_pixels += image.shape[0] * image.shape[1] if regions is None else 0
        t1 = clock()
        self.stats.faces += len(boxes)
        scored = [(b, self.quality.check(image, b)) for b in boxes]
        t2 = clock()
        seen, ended = self.tracker.update(boxes, frame.ts, image)
        t3 = clock()
        by_box = {id(b): q for b, q in scored}
        for track in seen:
            q = by_box.get(id(track.box))
            if q is not None and q.accepted:
                self._keep(track.track_id, image, track.box, q.score)
        t4 = clock()
        self.stats.seconds.update(
            {"detect": t1 - t0, "quality": t2 - t1, "track": t3 - t2, "keep": t4 - t3}
        )
        return self._finish_tracks(ended)

    @property
    def last_ts(self) -> datetime | None:
        """Capture time of the last frame fed (None before the first)."""
        return self._last_ts

    def finish(self) -> list[VisitorEvent]:
        """End of stream: close every live track; their events."""
        return self._finish_tracks(self.tracker.flush())

    def _keep(self, track_id: str, image: Image, box: Box, score: float) -> None:
        state = self._states[track_id]
        k = self.config.embed_per_track
        if len(state.best) >= k and score <= state.best[-1].score:
            return
        h, w = image.shape[:2]
        m = self.config.crop_margin
        dx, dy = int(box.width * m), int(box.height * m)
        outer = Box(box.left - dx, box.top - dy, box.right + dx, box.bottom + dy).clip(w, h)
        crop = image[outer.top : outer.bottom, outer.left : outer.right].copy()
        inner = Box(
            box.left - outer.left,
            box.top - outer.top,
            box.right - outer.left,
            box.bottom - outer.top,
        )
        state.best.append(_Candidate(score, crop, inner))
        state.best.sort(key=lambda c: -c.score)
        del state.best[k:]

    def _finish_tracks(self, ended: list[Track]) -> list[VisitorEvent]:
        out: list[VisitorEvent] = []
        for track in ended:
            state = self._states.pop(track.track_id, _TrackState())
            if track.hits < self.config.min_track_hits:
                continue
            self.stats.tracks += 1
            assert self._size is not None
            crossings = self.line.crossings(track.path, *self._size)
            if not crossings:
                continue
            ident = self._identify(state, crossings[0].ts)
            if ident is None:  # enrolled staff: not a visitor
                continue
            person_id, quality = ident
            for c in crossings:
                ev = VisitorEvent(
                    camera_id=self.camera_id,
                    person_id=person_id,
                    event=c.event,
                    ts=c.ts,
                    quality=quality,
                    track_id=f"{self.camera_id}-{self._session}-{track.track_id}",
                )
                out.append(ev)
                if self.on_event:
                    self.on_event(ev)
        self.events.extend(out)
        self.stats.events += len(out)
        return out

    def _identify(self, state: _TrackState, seen_at: datetime) -> tuple[str | None, float] | None:
        """(PersonID, quality) of a track's best faces; None when they are enrolled staff."""
        if not state.best:
            return None, 0.0
        quality = max(c.score for c in state.best)
        t0 = time.perf_counter()
        vectors = [self.extractor.extract(c.crop, c.box) for c in state.best]
        self.stats.embeddings += len(vectors)
        t1 = time.perf_counter()
        mean = np.mean(vectors, axis=0).astype(np.float32)
        if self.staff is not None and self.staff.match(mean) is not None:
            state.best.clear()
            self.stats.staff_tracks += 1
            self.stats.seconds.update({"embed": t1 - t0})
            return None
        ident = self.store.identify(self.tenant_id, mean, seen_at)
        t2 = time.perf_counter()
        self.stats.seconds.update({"embed": t1 - t0, "identify": t2 - t1})
        state.best.clear()  # the crops go now: no face image outlives the analyzer
        return ident.person_id, round(quality, 4)
