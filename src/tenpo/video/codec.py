"""MP4 encoding and decoding of frame sequences (PyAV, H.264 with a constant frame rate).

Chunks carry frame ``i`` at ``pts = i`` in a ``1/fps`` time base, so a frame's capture time
is the chunk's start time plus ``i / fps``: counting frames is counting time.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import cast

import av
import numpy as np

from tenpo.core.errors import BadInput
from tenpo.video.detect import Image

__all__ = ["decode_mp4", "encode_mp4"]

log = logging.getLogger(__name__)


def encode_mp4(
    frames: Iterable[Image], fps: int, *, crf: int = 23, codec: str = "libx264"
) -> bytes:
    """H.264 MP4 of BGR frames (all the same size), one frame per ``1/fps`` second."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream: av.VideoStream | None = None
        for i, image in enumerate(frames):
            if stream is None:
                h, w = image.shape[:2]
                if w % 2 or h % 2:
                    raise BadInput(f"frame size must be even for H.264, got {w}×{h}")
                added = container.add_stream(codec, rate=fps)
                assert isinstance(added, av.VideoStream)
                stream = added
                stream.width, stream.height = w, h
                stream.pix_fmt = "yuv420p"
                stream.time_base = Fraction(1, fps)
                if codec == "libx264":
                    stream.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is None:
            raise BadInput("cannot encode an empty chunk")
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def decode_mp4(data: bytes) -> Iterator[tuple[float, Image]]:
    """``(seconds from the chunk start, BGR frame)`` for every frame of an MP4."""
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except av.error.FFmpegError as exc:
        raise BadInput(f"not a readable video: {exc}") from exc
    with container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            base = stream.time_base or Fraction(1, 1)
            t = float(frame.pts * base) if frame.pts is not None else 0.0
            yield t, cast(Image, frame.to_ndarray(format="bgr24"))
