"""Tracking: keep a face's identity across frames and short occlusions.

No maintained tracking library is in the project's lock (norfair, motpy, ByteTrack
packages are not), so :class:`IouTracker` is a small one: greedy association by IoU, with a
fall-back on centre distance (relative to the box size) for fast movers, and a track kept
alive for ``max_missed`` detection rounds without a match, so a face hidden for a moment
comes back under the same track id.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime

from tenpo.core.errors import BadInput
from tenpo.video.detect import Box

__all__ = ["IouTracker", "ObjectTracker", "Track"]


@dataclass
class Track:
    """A tracked face: its id, last box, path of centres with timestamps, misses."""

    track_id: str
    box: Box
    path: list[tuple[datetime, float, float]] = field(default_factory=list)
    missed: int = 0
    hits: int = 1


class ObjectTracker(ABC):
    """Associates detections of successive frames into tracks."""

    @abstractmethod
    def update(self, boxes: list[Box], ts: datetime) -> tuple[list[Track], list[Track]]:
        """Feed one frame's detections; (tracks matched or created now, tracks just ended)."""

    @abstractmethod
    def flush(self) -> list[Track]:
        """End every live track (end of stream) and return them."""


class IouTracker(ObjectTracker):
    """Greedy IoU / centre-distance tracker that survives ``max_missed`` empty rounds."""

    def __init__(
        self, min_iou: float = 0.2, max_center_dist: float = 1.0, max_missed: int = 5
    ) -> None:
        if not 0 <= min_iou <= 1:
            raise BadInput(f"min_iou must be in [0, 1], got {min_iou}")
        if max_missed < 0:
            raise BadInput(f"max_missed must be ≥ 0, got {max_missed}")
        self.min_iou = min_iou
        self.max_center_dist = max_center_dist
        self.max_missed = max_missed
        self.live: list[Track] = []
        self._ids = itertools.count(1)

    def _affinity(self, track: Track, box: Box) -> float:
        iou = track.box.iou(box)
        if iou >= self.min_iou:
            return 1.0 + iou
        (ax, ay), (bx, by) = track.box.center, box.center
        size = max(track.box.width, track.box.height, 1)
        dist = ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5 / size
        # Further misses widen the gate a little: the face kept moving while hidden.
        gate = self.max_center_dist * (1 + 0.5 * track.missed)
        return 1.0 - dist / gate if dist < gate else 0.0

    def update(self, boxes: list[Box], ts: datetime) -> tuple[list[Track], list[Track]]:
        """Match boxes to live tracks (best pairs first), start tracks for the rest."""
        pairs = sorted(
            (
                (self._affinity(t, b), ti, bi)
                for ti, t in enumerate(self.live)
                for bi, b in enumerate(boxes)
            ),
            reverse=True,
        )
        used_t: set[int] = set()
        used_b: set[int] = set()
        seen: list[Track] = []
        for aff, ti, bi in pairs:
            if aff <= 0 or ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            t = self.live[ti]
            t.box, t.missed, t.hits = boxes[bi], 0, t.hits + 1
            t.path.append((ts, *boxes[bi].center))
            seen.append(t)
        ended: list[Track] = []
        keep: list[Track] = []
        for ti, t in enumerate(self.live):
            if ti not in used_t:
                t.missed += 1
                if t.missed > self.max_missed:
                    ended.append(t)
                    continue
            keep.append(t)
        for bi, b in enumerate(boxes):
            if bi not in used_b:
                t = Track(f"t{next(self._ids)}", b, [(ts, *b.center)])
                keep.append(t)
                seen.append(t)
        self.live = keep
        return seen, ended

    def flush(self) -> list[Track]:
        """End all live tracks."""
        ended, self.live = self.live, []
        return ended
