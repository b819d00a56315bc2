"""Face detection: the ``FaceDetector`` base, dlib HOG (default), OpenCV Haar, and a fake.

Frames are BGR ``uint8`` arrays (OpenCV's layout). ``scale`` < 1 detects on a downscaled
copy and maps boxes back, trading the smallest detectable face for speed.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import cv2
import dlib
import numpy as np
import numpy.typing as npt

from tenpo.core.errors import BadInput

__all__ = [
    "Box",
    "FaceDetector",
    "FakeFaceDetector",
    "HaarFaceDetector",
    "HogFaceDetector",
    "Image",
]

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the full frame: left, top, right, bottom (exclusive)."""

    left: int
    top: int
    right: int
    bottom: int
    score: float = 1.0

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def center(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (0 when disjoint)."""
        w = min(self.right, other.right) - max(self.left, other.left)
        h = min(self.bottom, other.bottom) - max(self.top, other.top)
        if w <= 0 or h <= 0:
            return 0.0
        inter = w * h
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0

    def clip(self, width: int, height: int) -> Box:
        """The box clipped to a ``width``×``height`` frame."""
        return Box(
            max(0, self.left),
            max(0, self.top),
            min(width, self.right),
            min(height, self.bottom),
            self.score,
        )


def check_frame(image: object) -> Image:
    """``image`` if it is an H×W×3 uint8 array; :class:`BadInput` otherwise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise BadInput("a frame must be an H×W×3 uint8 array (BGR)")
    if image.shape[2] != 3:
        raise BadInput(f"a frame must have 3 channels, got {image.shape[2]}")
    return image


class FaceDetector(ABC):
    """Finds faces in a frame."""

    @abstractmethod
    def detect(self, image: Image) -> list[Box]:
        """Face boxes in full-frame pixels."""

    def detect_regions(self, image: Image, regions: list[Box]) -> list[Box]:
        """Faces found within ``regions`` (disjoint boxes of the frame), in frame pixels."""
        h, w = image.shape[:2]
        found: list[Box] = []
        for r in regions:
            r = r.clip(w, h)
            if r.width < 8 or r.height < 8:
                continue
            crop = np.ascontiguousarray(image[r.top : r.bottom, r.left : r.right])
            found += [
                Box(b.left + r.left, b.top + r.top, b.right + r.left, b.bottom + r.top, b.score)
                for b in self.detect(crop)
            ]
        return found


class _Scaled(FaceDetector):
    def __init__(self, scale: float) -> None:
        if not 0 < scale <= 4:
            raise BadInput(f"detection scale must be in (0, 4], got {scale}")
        self.scale = scale

    def _gray(self, image: Image) -> Image:
        gray: Any = cv2.cvtColor(check_frame(image), cv2.COLOR_BGR2GRAY)
        if self.scale != 1.0:
            gray = cv2.resize(
                gray, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA
            )
        return cast(Image, gray)

    def _box(self, left: float, top: float, right: float, bottom: float, score: float) -> Box:
        s = self.scale
        return Box(round(left / s), round(top / s), round(right / s), round(bottom / s), score)


class HogFaceDetector(_Scaled):
    """dlib's HOG + linear SVM frontal face detector (finds faces from ~80 px at scale 1)."""

    def __init__(self, scale: float = 1.0, upsample: int = 0, min_score: float = 0.0) -> None:
        super().__init__(scale)
        self.upsample = upsample
        self.min_score = min_score
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: Image) -> list[Box]:
        """Faces found by HOG, with the SVM score."""
        gray = self._gray(image)
        rects, scores, _ = self._detector.run(gray, self.upsample, self.min_score)
        h, w = image.shape[:2]
        return [
            self._box(r.left(), r.top(), r.right(), r.bottom(), float(s)).clip(w, h)
            for r, s in zip(rects, scores, strict=True)
        ]


class HaarFaceDetector(_Scaled):
    """OpenCV's Haar cascade (frontal face, default model): faster, more false positives."""

    def __init__(
        self, scale: float = 1.0, min_size: int = 40, min_neighbors: int = 5, cascade: str = ""
    ) -> None:
        super().__init__(scale)
        folder: str = cv2.data.haarcascades  # type: ignore[attr-defined]
        path = cascade or folder + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise BadInput(f"cannot load Haar cascade {path}")
        self.min_size = min_size
        self.min_neighbors = min_neighbors

    def detect(self, image: Image) -> list[Box]:
        """Faces found by the cascade (score 1)."""
        gray = self._gray(image)
        m = max(8, round(self.min_size * self.scale))
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(m, m)
        )
        h, w = image.shape[:2]
        return [self._box(x, y, x + bw, y + bh, 1.0).clip(w, h) for (x, y, bw, bh) in found]


class FakeFaceDetector(FaceDetector):
    """Returns boxes from a function of the frame number (for unit tests)."""

    def __init__(self, boxes: Callable[[int], list[Box]]) -> None:
        self._boxes = boxes
        self.calls = 0

    def detect(self, image: Image) -> list[Box]:
        """The boxes scripted for this call."""
        out = self._boxes(self.calls)
        self.calls += 1
        return out

    def detect_regions(self, image: Image, regions: list[Box]) -> list[Box]:
        """The boxes scripted for this call whose centre lies in a region."""
        return [
            b
            for b in self.detect(image)
            if any(
                r.left <= b.center[0] < r.right and r.top <= b.center[1] < r.bottom for r in regions
            )
        ]
