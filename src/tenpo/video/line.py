"""The entrance line of a camera and the direction in which a track crosses it.

The line runs from ``a`` to ``b`` in normalised image coordinates (0..1, origin top-left,
y down). Moving from the left of a→b to its right (seen in the image, y down) is an
``entry``: for a horizontal line drawn left to right that is moving downwards. Swap ``a``
and ``b`` (or set ``entry_to_right`` false) for the other way. The line's ``config`` lives in
the rgb_camera device's control-plane ``config`` under ``"line"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tenpo.core.errors import BadInput

__all__ = ["Crossing", "EntranceLine"]


class Crossing(BaseModel):
    """One crossing of the line by a track."""

    model_config = ConfigDict(frozen=True)

    event: Literal["entry", "exit"]
    ts: datetime


class EntranceLine(BaseModel):
    """A line segment in normalised image coordinates; crossing it gives entry or exit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: tuple[float, float] = Field((0.0, 0.5), description="Start point (x, y), 0..1.")
    b: tuple[float, float] = Field((1.0, 0.5), description="End point (x, y), 0..1.")
    entry_to_right: bool = Field(True, description="Crossing to the right of a→b is an entry.")
    margin: float = Field(
        0.02, ge=0, lt=0.5, description="Dead band around the line (fraction of the frame)."
    )

    @model_validator(mode="after")
    def _check(self) -> EntranceLine:
        for x, y in (self.a, self.b):
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise ValueError("line points must be within 0..1")
        if self.a == self.b:
            raise ValueError("line points a and b must differ")
        return self

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> EntranceLine:
        """The ``"line"`` entry of a camera's config (the default horizontal line if absent)."""
        raw = (config or {}).get("line")
        try:
            return cls() if raw is None else cls.model_validate(raw)
        except ValidationError as exc:
            raise BadInput(f"invalid entrance line in camera config: {exc}") from exc

    def distance(self, x: float, y: float) -> float:
        """Signed distance of (x, y) from the line, normalised units: > 0 right of a→b."""
        (ax, ay), (bx, by) = self.a, self.b
        dx, dy = bx - ax, by - ay
        length = (dx * dx + dy * dy) ** 0.5
        return (dx * (y - ay) - dy * (x - ax)) / length

    def side(self, x: float, y: float) -> int:
        """+1 right of a→b, -1 left, 0 within the margin (normalised coordinates)."""
        dist = self.distance(x, y)
        if abs(dist) <= self.margin:
            return 0
        return 1 if dist > 0 else -1

    def crossings(
        self, path: list[tuple[datetime, float, float]], width: int, height: int
    ) -> list[Crossing]:
        """Crossings along a pixel path ``(ts, x, y)`` of a ``width``×``height`` frame.

        A crossing is counted once the path is past the dead band on the other side; its
        time is interpolated where the path cuts the line itself (between the last point
        before and the first point after it), so it does not lag by the detection interval.
        """
        out: list[Crossing] = []
        last = 0
        prev: tuple[datetime, float] | None = None  # last point off the line: (ts, distance)
        for ts, x, y in path:
            d = self.distance(x / width, y / height)
            s = 0 if abs(d) <= self.margin else (1 if d > 0 else -1)
            if s == 0:
                continue
            if last and s != last:
                entry = (s > 0) == self.entry_to_right
                out.append(Crossing(event="entry" if entry else "exit", ts=_cut(prev, ts, d)))
            last = s
            prev = (ts, d)
        return out


def _cut(prev: tuple[datetime, float] | None, ts: datetime, d: float) -> datetime:
    """When the segment from ``prev`` (ts, distance) to (``ts``, ``d``) meets the line."""
    if prev is None:
        return ts
    t0, d0 = prev
    u = d0 / (d0 - d) if d0 != d else 1.0
    return t0 + (ts - t0) * min(1.0, max(0.0, u))
