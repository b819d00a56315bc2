"""Motion gating: where in a frame face detection needs to look.

Face detection (dlib HOG over the whole 640×480 frame) is the analyzer's most expensive
per-frame stage, and most of an entrance camera's frame is still: a wall, a floor, a door.
:class:`MotionRegions` compares each detection frame with the previous one at 1/8 scale and
returns the boxes that changed (a person walking), grown by a margin, together with the
neighbourhood of every live track (someone standing still is still looked for). Nothing
changed and nobody tracked: no detection at all. Every ``full_every``-th round, and when the
changed area is most of the frame (a lighting change, a camera bump), the whole frame is
searched, so a face that arrived unseen is picked up within ``full_every`` rounds.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from tenpo.core.errors import BadInput
from tenpo.video.detect import Box, Image

__all__ = ["MotionRegions"]


class MotionRegions:
    """Regions of a frame to run face detection on (None: the whole frame)."""

    def __init__(
        self,
        *,
        scale: int = 8,
        threshold: int = 12,
        margin: int = 40,
        track_margin: float = 1.0,
        min_side: int = 112,
        full_every: int = 10,
        max_share: float = 0.6,
    ) -> None:
        if scale < 1 or full_every < 1 or not 0 < max_share <= 1:
            raise BadInput("motion regions need scale ≥ 1, full_every ≥ 1, 0 < max_share ≤ 1")
        self.scale = scale
        self.threshold = threshold
        self.margin = margin
        self.track_margin = track_margin
        self.min_side = min_side
        self.full_every = full_every
        self.max_share = max_share
        self.rounds = 0
        self.full_rounds = 0
        self._prev: Any = None

    def regions(self, image: Image, tracked: list[Box]) -> list[Box] | None:
        """Disjoint boxes to search in ``image`` (the live tracks' last boxes in
        ``tracked``); None to search the whole frame."""
        h, w = image.shape[:2]
        small = cv2.cvtColor(
            cv2.resize(
                image,
                (max(1, w // self.scale), max(1, h // self.scale)),
                interpolation=cv2.INTER_AREA,
            ),
            cv2.COLOR_BGR2GRAY,
        )
        prev, self._prev = self._prev, small
        self.rounds += 1
        if prev is None or prev.shape != small.shape or (self.rounds - 1) % self.full_every == 0:
            self.full_rounds += 1
            return None
        moved = (cv2.absdiff(small, prev) > self.threshold).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(moved, connectivity=8)
        s, m = self.scale, self.margin
        boxes = [
            Box(x * s - m, y * s - m, (x + bw) * s + m, (y + bh) * s + m)
            for x, y, bw, bh, _ in stats[1:n]
        ]
        for b in tracked:
            dx, dy = int(b.width * self.track_margin), int(b.height * self.track_margin)
            boxes.append(Box(b.left - dx, b.top - dy, b.right + dx, b.bottom + dy))
        boxes = _merge([_align(self._grow(b)).clip(w, h) for b in boxes])
        if sum(b.width * b.height for b in boxes) > self.max_share * w * h:
            self.full_rounds += 1
            return None
        return boxes

    def _grow(self, b: Box) -> Box:
        """At least ``min_side`` on each side (the detector needs room around a face)."""
        cx, cy = b.center
        half_w, half_h = max(b.width, self.min_side) / 2, max(b.height, self.min_side) / 2
        return Box(round(cx - half_w), round(cy - half_h), round(cx + half_w), round(cy + half_h))


def _align(b: Box, cell: int = 8) -> Box:
    """``b`` grown to multiples of ``cell`` px: dlib's HOG cells then fall on the same grid in
    the region as in the whole frame (an offset grid finds a borderline face in one, not the
    other)."""
    return Box(
        b.left // cell * cell,
        b.top // cell * cell,
        -(-b.right // cell) * cell,
        -(-b.bottom // cell) * cell,
    )


def _merge(boxes: list[Box]) -> list[Box]:
    """Union overlapping boxes until none overlap."""
    out = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom:
                    out[i] = Box(
                        min(a.left, b.left),
                        min(a.top, b.top),
                        max(a.right, b.right),
                        max(a.bottom, b.bottom),
                    )
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out
