"""Checks of control-plane values; each raises :class:`BadInput` naming the bad value."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tenpo.core.errors import BadInput

DEVICE_KINDS: frozenset[str] = frozenset({"people_counter", "tof_camera", "rgb_camera"})
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_TENANT = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# Ids that end up in lake keys and MQTT topics: no "/", "+", "#", "=" or spaces.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HHMM = re.compile(r"^(\d{2}):(\d{2})$")


def tenant_id(value: str) -> str:
    """A tenant id: a lowercase slug such as ``acme`` (letters, digits, ``-``; 1-32 chars)."""
    if not isinstance(value, str) or not _TENANT.match(value):
        raise BadInput(
            f"invalid tenant id {value!r}: use 1-32 lowercase letters, digits or '-', "
            "starting with a letter"
        )
    return value


def safe_id(value: str, what: str) -> str:
    """An id used in keys and topics: 1-64 of ``A-Z a-z 0-9 . _ -``, not starting with a dot."""
    if not isinstance(value, str) or not _SAFE_ID.match(value):
        raise BadInput(f"invalid {what} {value!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return value


def text(value: str | None, what: str, *, max_len: int = 200) -> str:
    """A required, stripped, non-empty text of at most ``max_len`` characters."""
    cleaned = value.strip() if isinstance(value, str) else ""
    if not cleaned:
        raise BadInput(f"{what} must not be empty")
    if len(cleaned) > max_len:
        raise BadInput(f"{what} is longer than {max_len} characters")
    return cleaned


def optional_text(value: str | None, what: str, *, max_len: int = 64) -> str | None:
    """Like :func:`text`, but None or blank becomes None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return text(value, what, max_len=max_len)


def timezone(value: str) -> str:
    """An IANA timezone name that ``zoneinfo`` knows."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise BadInput(
            f"unknown timezone {value!r} (expected an IANA name like 'Asia/Tokyo')"
        ) from None
    return value


def floor_area(value: Decimal | int | str | None) -> Decimal | None:
    """A positive floor area in m², at most two decimals."""
    if value is None:
        return None
    if isinstance(value, float):
        raise BadInput("floor area must be a Decimal, int or str, not float")
    try:
        area = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadInput(f"invalid floor area {value!r}: expected a number of m²") from None
    if not area.is_finite() or area <= 0 or area >= Decimal("1e10"):
        raise BadInput(f"invalid floor area {value!r}: expected a positive number of m²")
    if area != area.quantize(Decimal("0.01")):
        raise BadInput(f"invalid floor area {value!r}: at most two decimals")
    return area.quantize(Decimal("0.01"))


def opening_hours(value: Mapping[str, Any] | None) -> dict[str, list[str] | None] | None:
    """Opening hours per weekday: ``{"mon": ["10:00", "21:00"], ..., "sun": None}``.

    Days not listed are closed (None). Closing may pass midnight as ``"25:00"``.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BadInput("opening hours must be an object keyed by weekday (mon..sun)")
    unknown = sorted(set(value) - set(WEEKDAYS))
    if unknown:
        raise BadInput(f"opening hours: unknown weekday {unknown[0]!r} (expected mon..sun)")
    hours: dict[str, list[str] | None] = {}
    for day in WEEKDAYS:
        span = value.get(day)
        if span is None:
            hours[day] = None
            continue
        if not isinstance(span, list | tuple) or len(span) != 2:
            raise BadInput(f"opening hours for {day}: expected [open, close] or null")
        open_min = _minutes(span[0], day, max_hour=23)
        close_min = _minutes(span[1], day, max_hour=47)
        if close_min <= open_min:
            raise BadInput(f"opening hours for {day}: closing {span[1]} is not after {span[0]}")
        hours[day] = [str(span[0]), str(span[1])]
    return hours


def _minutes(value: object, day: str, *, max_hour: int) -> int:
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None or int(match[1]) > max_hour or int(match[2]) > 59:
        raise BadInput(f"opening hours for {day}: invalid time {value!r} (expected HH:MM)")
    return int(match[1]) * 60 + int(match[2])


def device_kind(value: str) -> str:
    """One of :data:`DEVICE_KINDS`."""
    if value not in DEVICE_KINDS:
        raise BadInput(
            f"unknown device kind {value!r}; expected one of {', '.join(sorted(DEVICE_KINDS))}"
        )
    return value


def names(values: Iterable[str], what: str) -> list[str]:
    """Distinct, non-empty line or zone names, in the order given."""
    if isinstance(values, str):
        raise BadInput(f"{what} must be a list of names, not a string")
    result: list[str] = []
    for value in values:
        name = text(value, f"{what} name", max_len=64)
        if name in result:
            raise BadInput(f"{what} name {name!r} is listed twice")
        result.append(name)
    return result


def json_object(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """A JSON-serialisable object (None becomes ``{}``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadInput(f"{what} must be a JSON object")
    try:
        return dict(json.loads(json.dumps(dict(value))))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{what} is not JSON-serialisable: {exc}") from None
