"""Synthetic entrance-camera clips from real faces that ship inside scikit-image.

Faces: the ``astronaut`` photo's face and a few faces of scikit-image's LFW subset (25×25,
upscaled), each pasted with a soft elliptical mask onto a plain shop-entrance background
and moved vertically through the default entrance line (y = 0.5): downwards is an entry,
upwards an exit. :class:`Walk` describes one pass; :func:`render` yields the frames and
:func:`truth` the expected events. Used by tests, benchmarks and ``tenpo demo --video``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal

import cv2
import numpy as np

from tenpo.core.errors import BadInput
from tenpo.video.analyzer import Frame
from tenpo.video.detect import Image

__all__ = ["FACES", "Walk", "face_sprite", "render", "truth"]

# LFW-subset images whose dlib descriptors are pairwise far apart (distinct people).
_LFW = {"lfw0": 0, "lfw1": 1, "lfw7": 7, "lfw18": 18, "lfw46": 46}
FACES = ("astronaut", *_LFW)


@cache
def face_sprite(name: str) -> Image:
    """A BGR head-and-shoulders sprite (~170 px) of a named face."""
    from skimage import data  # dev dependency: imported only when a clip is made

    if name == "astronaut":
        rgb = data.astronaut()[30:226, 124:320]  # the face with a margin
        sprite = cv2.resize(rgb, (170, 170), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(cv2.cvtColor(sprite, cv2.COLOR_RGB2BGR))
    if name in _LFW:
        grey = (data.lfw_subset()[_LFW[name]] * 255).astype(np.uint8)
        face = cv2.resize(grey, (116, 116), interpolation=cv2.INTER_CUBIC)
        face = cv2.copyMakeBorder(face, 27, 27, 27, 27, cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(cv2.cvtColor(face, cv2.COLOR_GRAY2BGR))
    raise BadInput(f"unknown synthetic face {name!r}; expected one of {FACES}")


@dataclass(frozen=True)
class Walk:
    """One person passing the entrance: who, which way, when (s from clip start), where."""

    face: str
    direction: Literal["entry", "exit"]
    start_s: float = 0.0
    duration_s: float = 2.0
    x: float = 0.5  # horizontal centre, fraction of the width
    scale: float = 1.0
    brightness: float = 1.0
    blur_sigma: float = 0.0

    def center(self, t: float, width: int, height: int) -> tuple[float, float] | None:
        """Sprite centre in pixels at clip time ``t``; None when not in the scene."""
        u = (t - self.start_s) / self.duration_s
        if not 0 <= u <= 1:
            return None
        y0, y1 = 0.18 * height, 0.82 * height
        if self.direction == "exit":
            y0, y1 = y1, y0
        return self.x * width, y0 + (y1 - y0) * u


def _background(width: int, height: int) -> Image:
    ramp = np.linspace(150, 95, height, dtype=np.float32)[:, None]
    bg = np.repeat(np.repeat(ramp, width, axis=1)[:, :, None], 3, axis=2)
    bg[:, :, 0] *= 0.9  # a warm tint
    img = bg.astype(np.uint8)
    cv2.rectangle(img, (width // 8, height // 10), (7 * width // 8, height), (70, 80, 95), 3)
    return img


def _sprite(walk: Walk) -> tuple[Any, Any]:
    sprite = face_sprite(walk.face)
    size = max(8, round(sprite.shape[0] * walk.scale))
    img = cv2.resize(sprite, (size, size), interpolation=cv2.INTER_AREA)
    if walk.brightness != 1.0:
        img = np.clip(img.astype(np.float32) * walk.brightness, 0, 255).astype(np.uint8)
    if walk.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), walk.blur_sigma)
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(mask, (size // 2, size // 2), (int(size * 0.46), int(size * 0.5)), 0, 0, 360, 1, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), size / 40)[:, :, None]
    return img, mask


def render(
    walks: list[Walk],
    seconds: float,
    *,
    start: datetime,
    width: int = 640,
    height: int = 480,
    fps: int = 15,
) -> Iterator[Frame]:
    """The clip's frames, ``fps`` per second from ``start`` (timezone-aware)."""
    if start.tzinfo is None:
        raise BadInput("the clip start must be timezone-aware")
    bg = _background(width, height)
    sprites = [_sprite(w) for w in walks]
    for i in range(round(seconds * fps)):
        t = i / fps
        img = bg.copy()
        for walk, (spr, mask) in zip(walks, sprites, strict=True):
            c = walk.center(t, width, height)
            if c is None:
                continue
            s = spr.shape[0]
            x0, y0 = round(c[0] - s / 2), round(c[1] - s / 2)
            xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + s, width), min(y0 + s, height)
            if xa >= xb or ya >= yb:
                continue
            sub = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
            region = img[ya:yb, xa:xb].astype(np.float32)
            m = mask[sub]
            img[ya:yb, xa:xb] = (region * (1 - m) + spr[sub] * m).astype(np.uint8)
        yield Frame(img, start + timedelta(seconds=t))


def truth(walks: list[Walk], start: datetime) -> list[tuple[str, str, datetime]]:
    """Expected (face, event, time of crossing the middle line), by time."""
    return sorted(
        (
            (w.face, w.direction, start + timedelta(seconds=w.start_s + w.duration_s / 2))
            for w in walks
        ),
        key=lambda e: e[2],
    )
