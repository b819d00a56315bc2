"""Face quality: is a detected face good enough to identify someone from?

:class:`LandmarkQualityChecker` checks, in this order (the first failure is the reason):
``too_small`` (box side below ``min_size`` px), ``too_dark`` / ``too_bright`` (mean grey
level), ``low_contrast`` (grey-level standard deviation), ``blurred`` (variance of the
Laplacian of the face resized to 100 px and scaled to a mean grey level of 128, so the
measure depends neither on face size nor on the light) and
``not_frontal`` (from dlib's 5-point landmarks: the nose's horizontal offset from the eyes'
midpoint relative to the eye distance, and the tilt of the eye line). Every rejection is
counted by reason in :attr:`FaceQualityChecker.rejections`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import dlib
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tenpo.video.detect import Box, Image, check_frame
from tenpo.video.models import model_path

__all__ = [
    "FaceQualityChecker",
    "FakeQualityChecker",
    "LandmarkQualityChecker",
    "Quality",
    "QualityThresholds",
]

REASONS = ("too_small", "too_dark", "too_bright", "low_contrast", "blurred", "not_frontal")


class QualityThresholds(BaseModel):
    """Configurable limits of :class:`LandmarkQualityChecker`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_size: int = Field(60, ge=1, description="Smallest face box side, px.")
    min_brightness: float = Field(40, ge=0, le=255, description="Lowest mean grey level.")
    max_brightness: float = Field(220, ge=0, le=255, description="Highest mean grey level.")
    min_contrast: float = Field(12, ge=0, description="Lowest grey-level standard deviation.")
    min_sharpness: float = Field(
        10,
        ge=0,
        description="Lowest Laplacian variance of the face at 100 px, mean grey level 128.",
    )
    max_yaw: float = Field(
        0.25, gt=0, description="Largest nose offset from the eyes' midpoint / eye distance."
    )
    max_roll_deg: float = Field(25, gt=0, description="Largest tilt of the eye line, degrees.")


@dataclass(frozen=True)
class Quality:
    """Outcome for one face: accepted or the rejection reason, and a 0..1 score."""

    accepted: bool
    score: float
    reason: str | None = None


class FaceQualityChecker(ABC):
    """Decides whether a face is usable; counts rejections by reason."""

    def __init__(self) -> None:
        self.rejections: Counter[str] = Counter()
        self.accepted = 0

    @abstractmethod
    def assess(self, image: Image, box: Box) -> Quality:
        """The quality of the face in ``box`` (no counting)."""

    def check(self, image: Image, box: Box) -> Quality:
        """:meth:`assess`, counting the result."""
        q = self.assess(image, box)
        if q.accepted:
            self.accepted += 1
        else:
            self.rejections[q.reason or "rejected"] += 1
        return q


class LandmarkQualityChecker(FaceQualityChecker):
    """Size, exposure, sharpness and frontalness (dlib 5-point landmarks)."""

    def __init__(self, thresholds: QualityThresholds | None = None) -> None:
        super().__init__()
        self.t = thresholds or QualityThresholds()
        self._predictor = dlib.shape_predictor(model_path("landmarks5"))

    def landmarks(self, gray: Image, box: Box) -> Any:
        """The 5 landmark points (x, y) of the face in ``box``."""
        rect = dlib.rectangle(box.left, box.top, box.right, box.bottom)
        shape = self._predictor(gray, rect)
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=float)

    def assess(self, image: Image, box: Box) -> Quality:
        """Accepted with a score, or the first failed check's reason."""
        frame = check_frame(image)
        h, w = frame.shape[:2]
        box = box.clip(w, h)
        t = self.t
        side = min(box.width, box.height)
        if side < t.min_size:
            return Quality(False, 0.0, "too_small")
        # Grey only around the face (the landmarks need a little room), not the whole frame.
        mx, my = box.width // 2, box.height // 2
        ox, oy = max(0, box.left - mx), max(0, box.top - my)
        gray: Any = cv2.cvtColor(
            frame[oy : min(h, box.bottom + my), ox : min(w, box.right + mx)], cv2.COLOR_BGR2GRAY
        )
        local = Box(box.left - ox, box.top - oy, box.right - ox, box.bottom - oy)
        face = gray[local.top : local.bottom, local.left : local.right]
        mean, std = float(face.mean()), float(face.std())
        if mean < t.min_brightness:
            return Quality(False, 0.0, "too_dark")
        if mean > t.max_brightness:
            return Quality(False, 0.0, "too_bright")
        if std < t.min_contrast:
            return Quality(False, 0.0, "low_contrast")
        norm = cv2.resize(face, (100, 100), interpolation=cv2.INTER_AREA)
        # Normalised to a mean grey level of 128: dimmer light scales the edges with the
        # mean, so it does not read as blur (blur leaves the mean where it was).
        sharp = float(cv2.Laplacian(norm, cv2.CV_64F).var()) * (128.0 / mean) ** 2
        if sharp < t.min_sharpness:
            return Quality(False, 0.0, "blurred")
        pts = self.landmarks(gray, local)
        eye_a, eye_b, nose = (pts[0] + pts[1]) / 2, (pts[2] + pts[3]) / 2, pts[4]
        eye_dist = float(np.linalg.norm(eye_a - eye_b))
        if eye_dist < 1:
            return Quality(False, 0.0, "not_frontal")
        yaw = abs(float(nose[0] - (eye_a[0] + eye_b[0]) / 2)) / eye_dist
        roll = abs(math.degrees(math.atan2(eye_b[1] - eye_a[1], eye_b[0] - eye_a[0])))
        roll = min(roll, 180 - roll)
        if yaw > t.max_yaw or roll > t.max_roll_deg:
            return Quality(False, 0.0, "not_frontal")
        score = (
            min(1.0, side / (3 * t.min_size))
            + min(1.0, sharp / (4 * max(t.min_sharpness, 1)))
            + (1 - yaw / t.max_yaw)
        ) / 3
        return Quality(True, round(score, 4))


class FakeQualityChecker(FaceQualityChecker):
    """Scores a face by a function of its box (for unit tests); accepts everything by default."""

    def __init__(self, judge: Callable[[Box], Quality] | None = None) -> None:
        super().__init__()
        self._judge = judge or (lambda box: Quality(True, min(1.0, box.width / 200)))

    def assess(self, image: Image, box: Box) -> Quality:
        """The scripted quality."""
        return self._judge(box)
