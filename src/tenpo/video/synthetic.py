"""Synthetic entrance-camera clips from real faces that ship inside scikit-image.

Faces: the ``astronaut`` photo's face and a few faces of scikit-image's LFW subset (25×25,
upscaled), each pasted with a soft elliptical mask onto a plain shop-entrance background
and moved vertically through the default entrance line (y = 0.5): downwards is an entry,
upwards an exit. :class:`Walk` describes one pass; :func:`render` yields the frames and
:func:`truth` the expected events. Used by tests, benchmarks and ``tenpo demo --video``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal

import cv2
import numpy as np

from tenpo.core.errors import BadInput
from tenpo.video.analyzer import Frame
from tenpo.video.detect import Box, Image

__all__ = [
    "FACES",
    "Loiter",
    "Scene",
    "Walk",
    "face_boxes",
    "face_sprite",
    "store_visit_scenario",
    "render",
    "truth",
    "truth_csv",
    "window",
]

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
    x_end: float | None = None  # diagonal walk: the centre ends here (default: x)
    person: str = ""  # ground-truth label (default: the face)

    @property
    def label(self) -> str:
        """Who this is in the ground truth."""
        return self.person or self.face

    def center(self, t: float, width: int, height: int) -> tuple[float, float] | None:
        """Sprite centre in pixels at clip time ``t``; None when not in the scene."""
        u = (t - self.start_s) / self.duration_s
        if not 0 <= u <= 1:
            return None
        y0, y1 = 0.18 * height, 0.82 * height
        if self.direction == "exit":
            y0, y1 = y1, y0
        x1 = self.x if self.x_end is None else self.x_end
        return (self.x + (x1 - self.x) * u) * width, y0 + (y1 - y0) * u


@dataclass(frozen=True)
class Loiter:
    """Someone (staff) hanging about near the door without crossing the line."""

    face: str
    start_s: float
    duration_s: float
    x: float = 0.5
    y: float = 0.3  # the line is at 0.5: stays on the street side
    radius: float = 0.06  # fraction of the width/height of the wandering
    scale: float = 1.0
    brightness: float = 1.0
    blur_sigma: float = 0.0
    person: str = "staff"

    @property
    def label(self) -> str:
        return self.person

    def center(self, t: float, width: int, height: int) -> tuple[float, float] | None:
        """A slow figure-of-eight around (x, y)."""
        u = t - self.start_s
        if not 0 <= u <= self.duration_s:
            return None
        ax, ay = self.radius * math.sin(0.9 * u), self.radius * 0.5 * math.sin(1.8 * u)
        return (self.x + ax) * width, (self.y + ay) * height


@dataclass(frozen=True)
class Scene:
    """What else happens in the clip: occluders in front of people, lighting over time."""

    # (t0, t1, x0, y0, x1, y1): a sign in front of people from t0 to t1 s, box in 0..1
    occluders: tuple[tuple[float, float, float, float, float, float], ...] = ()
    light: tuple[tuple[float, float], ...] = ()  # (t seconds, gain), piecewise linear

    def gain(self, t: float) -> float:
        """Global light gain at clip time ``t`` (1 when no lighting change)."""
        if not self.light:
            return 1.0
        ts = [p[0] for p in self.light]
        return float(np.interp(t, ts, [p[1] for p in self.light]))


Person = Walk | Loiter


def _background(width: int, height: int) -> Image:
    ramp = np.linspace(150, 95, height, dtype=np.float32)[:, None]
    bg = np.repeat(np.repeat(ramp, width, axis=1)[:, :, None], 3, axis=2)
    bg[:, :, 0] *= 0.9  # a warm tint
    img = bg.astype(np.uint8)
    cv2.rectangle(img, (width // 8, height // 10), (7 * width // 8, height), (70, 80, 95), 3)
    return img


def _sprite(walk: Person) -> tuple[Any, Any]:
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
    walks: Sequence[Person],
    seconds: float,
    *,
    start: datetime,
    width: int = 640,
    height: int = 480,
    fps: int = 15,
    scene: Scene | None = None,
) -> Iterator[Frame]:
    """The clip's frames, ``fps`` per second from ``start`` (timezone-aware).

    People are drawn in list order (a later one passes in front), then the occluders.
    """
    if start.tzinfo is None:
        raise BadInput("the clip start must be timezone-aware")
    scene = scene or Scene()
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
        for t0, t1, x0, y0, x1, y1 in scene.occluders:
            if not t0 <= t <= t1:
                continue
            img[round(y0 * height) : round(y1 * height), round(x0 * width) : round(x1 * width)] = (
                60,
                70,
                80,
            )
        gain = scene.gain(t)
        if gain != 1.0:
            img = np.asarray(cv2.convertScaleAbs(img, alpha=gain), dtype=np.uint8)
        yield Frame(img, start + timedelta(seconds=t))


def face_boxes(
    walks: Sequence[Person],
    t: float,
    *,
    width: int = 640,
    height: int = 480,
    scene: Scene | None = None,
) -> list[tuple[str, Box]]:
    """Ground-truth face boxes (label, box) visible at clip time ``t``: what a perfect
    detector would find. A face is hidden when an occluder, or a person drawn later (in
    front), covers more than half of its box."""
    scene = scene or Scene()
    boxes: list[tuple[str, Box]] = []
    for walk in walks:
        c = walk.center(t, width, height)
        if c is None:
            continue
        half = 0.3 * max(8, round(face_sprite(walk.face).shape[0] * walk.scale))
        b = Box(round(c[0] - half), round(c[1] - half), round(c[0] + half), round(c[1] + half))
        if b.clip(width, height).width < half or b.clip(width, height).height < half:
            continue
        boxes.append((walk.label, b))
    covers = [
        Box(round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height))
        for t0, t1, x0, y0, x1, y1 in scene.occluders
        if t0 <= t <= t1
    ]
    visible: list[tuple[str, Box]] = []
    for i, (label, b) in enumerate(boxes):
        front = covers + [o for _, o in boxes[i + 1 :]]
        area = b.width * b.height
        if all(_overlap(b, o) <= area / 2 for o in front):
            visible.append((label, b))
    return visible


def _overlap(a: Box, b: Box) -> int:
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    return max(0, w) * max(0, h)


def truth(walks: Sequence[Person], start: datetime) -> list[tuple[str, str, datetime]]:
    """Expected (person label, event, time of crossing the middle line), by time."""
    return sorted(
        (
            (w.label, w.direction, start + timedelta(seconds=w.start_s + w.duration_s / 2))
            for w in walks
            if isinstance(w, Walk)
        ),
        key=lambda e: e[2],
    )


def truth_csv(crossings: Sequence[tuple[str, str, datetime]]) -> str:
    """Hand-count CSV (``ts,direction,person``) of crossings, as ``tenpo video audit`` reads."""
    rows = ["ts,direction,person"]
    rows += [f"{ts.isoformat()},{event},{label}" for label, event, ts in crossings]
    return "\n".join(rows) + "\n"


def store_visit_scenario(
    seed: int, *, offset_s: float = 0.0, mirror: bool = False
) -> tuple[list[Person], Scene, float]:
    """A hard 33 s entrance sequence (walks, scene, length), jittered by ``seed``.

    A group of three entering abreast; two people crossing paths at the line (one hides the
    other); staff loitering near the door while two leave; a sign hiding a walker just before
    the line; lighting dimming to 55 % and back while three enter (one of them returning);
    five people in the frame at once while four leave. 8 entries and 8 exits; five customers
    (astronaut, lfw0, lfw1, lfw7, lfw18) and one member of staff (lfw46) who never crosses.
    ``mirror`` flips the scene left-right; ``offset_s`` shifts it in time (to chain several).
    """
    rng = np.random.default_rng(seed)

    def j(v: float, spread: float) -> float:
        return float(v + rng.uniform(-spread, spread))

    def x(v: float) -> float:
        v = j(v, 0.03)
        return 1 - v if mirror else v

    o = offset_s
    sc = j(0.74, 0.03)
    # A group abreast is never exactly abreast: who leads by how much is drawn, and nobody
    # crosses within 0.15 s of another person going the same way (an audit matches crossings
    # by time; closer than that, hand counts cannot say who was who either).
    lead = [0.3 + 0.18 * k for k in rng.permutation(3)]
    people: list[Person] = [
        # A: a group of three abreast
        Walk("astronaut", "entry", o + j(lead[0], 0.015), 2.2, x=x(0.18), scale=sc),
        Walk("lfw0", "entry", o + j(lead[1], 0.015), 2.2, x=x(0.5), scale=sc),
        Walk("lfw1", "entry", o + j(lead[2], 0.015), 2.2, x=x(0.82), scale=sc),
        # B: crossing paths; they meet on the line
        Walk("lfw7", "entry", o + 4.2, 2.4, x=x(0.3), x_end=x(0.68), scale=sc),
        Walk("lfw18", "exit", o + 4.2 + j(0.0, 0.1), 2.4, x=x(0.7), x_end=x(0.32), scale=sc),
        # C: staff loitering near the door while two leave
        Loiter("lfw46", o + 8.0, 6.0, x=x(0.5), y=0.27, scale=sc),
        Walk("astronaut", "exit", o + j(9.0, 0.2), 2.2, x=x(0.16), scale=sc),
        Walk("lfw0", "exit", o + j(10.5, 0.2), 2.2, x=x(0.84), scale=sc),
        # D: a sign hides one walker just before the line
        Walk("lfw1", "exit", o + j(14.5, 0.2), 2.2, x=x(0.25), scale=sc),
        Walk("lfw18", "entry", o + j(15.0, 0.2), 2.2, x=x(0.75), scale=sc),
        # E: lighting dims while three enter; the astronaut returns
        Walk("astronaut", "entry", o + j(19.5, 0.1), 2.2, x=x(0.72), scale=sc, brightness=1.1),
        Walk("lfw0", "entry", o + j(19.9, 0.1), 2.2, x=x(0.28), scale=sc),
        Walk("lfw1", "entry", o + j(21.6, 0.2), 2.2, x=x(0.5), scale=sc),
        # F: five in the frame: staff by the door, four leaving
        Loiter("lfw46", o + 26.0, 6.5, x=x(0.14), y=0.25, radius=0.03, scale=sc),
        Walk("lfw7", "exit", o + j(26.4, 0.1), 2.2, x=x(0.42), scale=sc),
        Walk("astronaut", "exit", o + j(26.9, 0.1), 2.2, x=x(0.84), scale=sc),
        Walk("lfw0", "exit", o + j(27.6, 0.1), 2.2, x=x(0.6), scale=sc),
        Walk("lfw18", "exit", o + j(28.2, 0.1), 2.2, x=x(0.3), scale=sc),
    ]
    sign = (0.0, 0.35, 0.45, 0.45) if not mirror else (0.55, 0.35, 1.0, 0.45)
    scene = Scene(
        occluders=((o + 14.0, o + 18.5, *sign),),
        light=((o + 19.0, 1.0), (o + 21.0, 0.55), (o + 23.5, 0.55), (o + 25.0, 1.0)),
    )
    return people, scene, 33.0


def window(
    people: Sequence[Person], scene: Scene, t0: float, t1: float
) -> tuple[list[Person], Scene, float]:
    """The part of a scenario from ``t0`` to ``t1`` s, shifted to start at 0: the people
    wholly inside it, the occluders and light overlapping it (a short clip for tests)."""
    if not 0 <= t0 < t1:
        raise BadInput(f"window must have 0 <= t0 < t1, got {t0}, {t1}")
    kept = [
        replace(p, start_s=p.start_s - t0)
        for p in people
        if p.start_s >= t0 and p.start_s + p.duration_s <= t1
    ]
    occluders = tuple(
        (a - t0, b - t0, x0, y0, x1, y1)
        for a, b, x0, y0, x1, y1 in scene.occluders
        if b >= t0 and a <= t1
    )
    light = tuple((t - t0, g) for t, g in scene.light)
    return kept, Scene(occluders=occluders, light=light), t1 - t0
