"""``GET /v1/devices/health``: the caller's devices' health on one business date."""

from __future__ import annotations

import datetime as dt
import re
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from tenpo.api._problems import problem_doc
from tenpo.api.deps import READER_ERRORS, Datamart, Reader
from tenpo.core.errors import BadInput
from tenpo.datamart.devices import DeviceHealthRecord, device_health, latest_health_date

__all__ = ["DeviceHealth", "DeviceHealthPage", "router"]

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class DeviceHealth(BaseModel):
    """One device's health on the date (``tenpo.iot.health`` defines the flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str
    store_id: str
    last_seen: datetime | None = Field(description="Latest heartbeat or count interval end.")
    interval_s: int | None = Field(description="The device's count interval, seconds.")
    intervals_expected: int
    intervals_received: int
    intervals_missing: int
    incomplete_hours: list[str] = Field(
        description="Local hours (`HH:00±hh:mm`, the offset in force) in which an expected "
        "interval is missing; the schedule is the store's opening hours or 24 h.",
        examples=[["12:00+09:00", "13:00+09:00"]],
    )
    heartbeats: int
    clock_skew_s: float | None = Field(
        description="Device clock minus tenpo's receive time (upper bound), seconds."
    )
    battery_min: float | None = Field(description="Lowest battery level reported (0-1).")
    last_status: str | None
    flags: list[str] = Field(
        description="Data-quality flags, e.g. missing_intervals, clock_ahead, low_battery.",
        examples=[["missing_intervals"]],
    )


class DeviceHealthPage(BaseModel):
    """Every device of the caller's tenant with health data on ``date``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: dt.date | None = Field(description="The business date (null: no health data yet).")
    items: list[DeviceHealth]


router = APIRouter()


@router.get(
    "/v1/devices/health",
    response_model=DeviceHealthPage,
    responses=READER_ERRORS | {422: problem_doc("`date` is not a date as YYYY-MM-DD.")},
    tags=["devices"],
)
def devices_health(
    caller: Reader,
    engine: Datamart,
    date_: Annotated[
        str | None,
        Query(
            alias="date",
            description="Business date, YYYY-MM-DD (default: the latest with data).",
            json_schema_extra={"format": "date"},
        ),
    ] = None,
) -> DeviceHealthPage:
    """Health of the caller's devices on one business date, by store and device."""
    if date_ is None:
        day = latest_health_date(engine, caller.tenant_id)
    else:
        try:
            if not _ISO_DATE.match(date_):
                raise ValueError(date_)
            day = date.fromisoformat(date_)
        except ValueError:
            raise BadInput(
                f"query parameter 'date' must be a date as YYYY-MM-DD, got {date_!r}",
                param="date",
            ) from None
    if day is None:
        return DeviceHealthPage(date=None, items=[])
    records = device_health(engine, caller.tenant_id, day, store_ids=caller.store_ids)
    return DeviceHealthPage(date=day, items=[_item(r) for r in records])


def _item(r: DeviceHealthRecord) -> DeviceHealth:
    return DeviceHealth(
        device_id=r.device_id,
        store_id=r.store_id,
        last_seen=r.last_seen,
        interval_s=r.interval_s,
        intervals_expected=r.intervals_expected,
        intervals_received=r.intervals_received,
        intervals_missing=r.intervals_missing,
        incomplete_hours=list(r.incomplete_hours),
        heartbeats=r.heartbeats,
        clock_skew_s=r.clock_skew_s,
        battery_min=r.battery_min,
        last_status=r.last_status,
        flags=list(r.flags),
    )
