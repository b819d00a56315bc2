"""Face features: the ``FeatureExtractor`` base, dlib's ResNet (128-d), and a fake."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import cv2
import dlib
import numpy as np

from tenpo.features.base import DIM, Vector
from tenpo.video.detect import Box, Image, check_frame
from tenpo.video.models import model_path

__all__ = ["DlibResNetExtractor", "FakeFeatureExtractor", "FeatureExtractor"]


class FeatureExtractor(ABC):
    """Turns a face (frame + box) into a 128-d vector; same person ⇒ small Euclidean distance."""

    @abstractmethod
    def extract(self, image: Image, box: Box) -> Vector:
        """The face's feature vector (float32, 128)."""


class DlibResNetExtractor(FeatureExtractor):
    """dlib's face recognition ResNet on the face aligned by the 5-point landmarks."""

    def __init__(self, num_jitters: int = 0) -> None:
        self.num_jitters = num_jitters
        self._predictor = dlib.shape_predictor(model_path("landmarks5"))
        self._model = dlib.face_recognition_model_v1(model_path("resnet"))

    def extract(self, image: Image, box: Box) -> Vector:
        """128-d descriptor of the face in ``box``."""
        rgb = cv2.cvtColor(check_frame(image), cv2.COLOR_BGR2RGB)
        shape = self._predictor(rgb, dlib.rectangle(box.left, box.top, box.right, box.bottom))
        desc = self._model.compute_face_descriptor(rgb, shape, self.num_jitters)
        return np.asarray(desc, dtype=np.float32)


class FakeFeatureExtractor(FeatureExtractor):
    """A vector from a function of the face crop and box (for unit tests)."""

    def __init__(self, identity: Callable[[Image, Box], int]) -> None:
        self._identity = identity
        self.calls = 0

    def extract(self, image: Image, box: Box) -> Vector:
        """A unit vector along the identity's axis."""
        self.calls += 1
        vec = np.zeros(DIM, dtype=np.float32)
        vec[self._identity(image, box) % DIM] = 1.0
        return vec
