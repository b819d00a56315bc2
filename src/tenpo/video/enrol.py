"""Staff enrolment: face descriptors from photos, and telling staff apart in the analyzer.

:func:`photo_descriptors` decodes each photo in memory (JPEG, PNG or WebP; the dimensions
are read from the header first, so a decompression bomb is refused before any pixel is
allocated), finds exactly one face with the analyzer's HOG detector and turns it into the
analyzer's 128-d dlib ResNet descriptor. Only the descriptors leave this module: the photo
bytes and the decoded pixels are dropped when the call returns, never written anywhere.
:class:`StaffMatcher` holds a store's enrolled descriptors; the analyzer asks it whether a
finished track is staff (nearest enrolled descriptor within ``threshold``, the Feature DB's
same-person distance) and, if so, emits nothing for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np

from tenpo.core.errors import BadInput
from tenpo.features.base import DIM, Vector
from tenpo.video.detect import FaceDetector, HogFaceDetector, Image
from tenpo.video.embed import DlibResNetExtractor, FeatureExtractor

__all__ = [
    "MAX_PHOTO_BYTES",
    "MAX_PHOTOS",
    "NoFace",
    "StaffMatcher",
    "UnsupportedImage",
    "photo_descriptors",
]

log = logging.getLogger(__name__)

MAX_PHOTO_BYTES = 10 * 1024 * 1024
"""Largest photo accepted (a phone camera's JPEG is 2–5 MB)."""
MAX_PHOTOS = 10
"""Photos accepted for one member of staff."""
_MAX_SIDE = 1280  # photos are shrunk to this long side before detection (speed, same faces)
_MIN_SIDE = 400  # smaller photos are enlarged so that HOG's 80-px window finds their face
_MAX_PIXELS = 50_000_000  # refused from the header, before decoding (a decompression bomb)


class UnsupportedImage(BadInput):
    """The bytes are not an image OpenCV can decode (HTTP 415)."""

    http_status = 415


class NoFace(BadInput):
    """A photo shows no face, or more than one (HTTP 422)."""


def _dimensions(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) from a JPEG, PNG or WebP header; None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
            w = int.from_bytes(data[26:28], "little") & 0x3FFF
            return "webp", w, int.from_bytes(data[28:30], "little") & 0x3FFF
        if kind == b"VP8L" and data[20] == 0x2F:
            bits = int.from_bytes(data[21:25], "little")
            return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8X":
            w = int.from_bytes(data[24:27], "little") + 1
            return "webp", w, int.from_bytes(data[27:30], "little") + 1
        return None
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            size = int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h = int.from_bytes(data[i + 5 : i + 7], "big")
                return "jpeg", int.from_bytes(data[i + 7 : i + 9], "big"), h
            if size < 2:
                return None
            i += 2 + size
    return None


def _decode(data: bytes, label: str) -> Image:
    if not data:
        raise UnsupportedImage(f"{label} is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise BadInput(f"{label} is over {MAX_PHOTO_BYTES} bytes")
    dims = _dimensions(data)
    if dims is None:
        raise UnsupportedImage(f"{label} is not a JPEG/PNG/WebP image")
    fmt, w, h = dims
    if w * h > _MAX_PIXELS:
        raise BadInput(f"{label}: a {w}×{h} {fmt} is over {_MAX_PIXELS} pixels")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] not in ((h, w), (w, h)):  # EXIF may rotate
        raise UnsupportedImage(f"{label} is a damaged or unreadable {fmt} image")
    return np.ascontiguousarray(image)


def _resized(image: Image) -> Image:
    h, w = image.shape[:2]
    side = max(h, w)
    if _MIN_SIDE <= side <= _MAX_SIDE:
        return image
    f = (_MAX_SIDE if side > _MAX_SIDE else _MIN_SIDE) / side
    mode = cv2.INTER_AREA if side > _MAX_SIDE else cv2.INTER_CUBIC
    out = cv2.resize(image, (round(w * f), round(h * f)), interpolation=mode)
    return np.ascontiguousarray(out, dtype=np.uint8)


@cache
def _models() -> tuple[FaceDetector, FeatureExtractor]:
    return HogFaceDetector(), DlibResNetExtractor()


def photo_descriptors(
    photos: Sequence[bytes],
    *,
    detector: FaceDetector | None = None,
    extractor: FeatureExtractor | None = None,
    names: Sequence[str] | None = None,
) -> list[Vector]:
    """One 128-d descriptor per photo (each must show exactly one face); nothing is kept.

    :class:`UnsupportedImage` (415) for bytes that are no image, :class:`NoFace` (422) for a
    photo without a face or with several, :class:`BadInput` (422) for too many or too large.
    """
    if not photos:
        raise BadInput("give at least one photo")
    if len(photos) > MAX_PHOTOS:
        raise BadInput(f"at most {MAX_PHOTOS} photos per member of staff, got {len(photos)}")
    det = detector or _models()[0]
    ext = extractor or _models()[1]
    out: list[Vector] = []
    for n, data in enumerate(photos):
        label = f"photo {names[n]!r}" if names and n < len(names) else f"photo {n + 1}"
        image = _resized(_decode(data, label))
        boxes = det.detect(image)
        if not boxes:
            raise NoFace(f"{label}: no face found (use a frontal, well-lit photo)")
        if len(boxes) > 1:
            raise NoFace(f"{label}: {len(boxes)} faces found; enrol from a photo of one person")
        vec = np.asarray(ext.extract(image, boxes[0]), dtype=np.float32)
        if vec.shape != (DIM,):
            raise BadInput(f"{label}: descriptor of shape {vec.shape}, expected ({DIM},)")
        out.append(vec)
        del image
    log.info("computed %d staff descriptor(s)", len(out))
    return out


class StaffMatcher:
    """A store's enrolled staff descriptors; :meth:`match` names the member a face is."""

    def __init__(self, staff: Sequence[tuple[str, Sequence[Vector]]], threshold: float = 0.6):
        if not 0 < threshold < 4:
            raise BadInput(f"staff match threshold must be in (0, 4), got {threshold}")
        self.threshold = threshold
        self._ids: list[str] = []
        rows: list[Vector] = []
        for staff_id, vectors in staff:
            for v in vectors:
                self._ids.append(staff_id)
                rows.append(np.asarray(v, dtype=np.float32))
        self._matrix = np.stack(rows) if rows else np.zeros((0, DIM), dtype=np.float32)

    def __len__(self) -> int:
        return len(set(self._ids))

    def match(self, vector: Vector) -> str | None:
        """The staff id whose nearest descriptor is within ``threshold`` of ``vector``."""
        if not self._ids:
            return None
        dist = np.linalg.norm(self._matrix - np.asarray(vector, dtype=np.float32), axis=1)
        i = int(np.argmin(dist))
        return self._ids[i] if float(dist[i]) < self.threshold else None
