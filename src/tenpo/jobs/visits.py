"""Customer visits from PersonID visitor events (``mart_store_visits``), as pure Ibis.

A visit is an ``entry`` of a person at a store on a business date, paired with an ``exit``:
first with the exit of the same track (the analyzer followed the person out; this keeps two
overlapping visits of one person apart), else with the next event of that person at that
store on that date when it is an unpaired exit. Choices:

* An entry followed by another entry (or by nothing) has no exit: ``exit_ts`` and ``dwell_s``
  are null, the visit still counts as a visit (and a unique visitor) but not in dwell times.
  An exit with no entry before it is ignored.
* Events without a PersonID (``person_id`` null) cannot be paired or counted per person and
  are left out.
* **Overlapping visits of one PersonID at one store on one date are one visit.** A person
  cannot be in a store twice at once: two overlapping tracks of one PersonID are a split track
  or two cameras seeing the same person (a real analyzer produces both). Visits are merged when
  one enters before (or at the second) another of the same person ends; a visit without an
  exit counts as the instant of its entry. The merged visit enters at the earliest entry (its
  camera: that entry's, the smallest camera id on a tie) and exits at the latest exit (null
  only if none of them has one). So (tenant, store, date, person, entry_ts) — the mart's key —
  is unique by construction, and dwell times, visits and staff shifts are not double counted.
* Staff are excluded: enrolled PersonIDs (``staff``: tenant_id, person_id), anybody with one
  visit of at least ``staff_min_visit_s`` on a date (a shift, not a shopping trip) for that
  date, and — when ``staff_min_days`` is set — anybody seen at the tenant's stores on at least
  that many dates of the last ``staff_days_window`` dates (then ``events`` must hold those
  earlier dates too; rows are only produced for ``days``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import ibis

from tenpo.core.errors import BadInput
from tenpo.jobs._common import (
    DEFAULT_UTC_OFFSET_S,
    cast_to,
    local_hour,
    require,
    with_offsets,
)
from tenpo.warehouse.schemas import MART_STORE_VISITS

__all__ = ["EVENT_COLUMNS", "VisitRules", "store_visits"]

EVENT_COLUMNS = (
    "tenant_id",
    "store_id",
    "camera_id",
    "person_id",
    "event",
    "business_date",
    "ts",
    "track_id",
)
STAFF_COLUMNS = ("tenant_id", "person_id")
VISIT_KEYS = ("tenant_id", "store_id", "business_date", "person_id")


@dataclass(frozen=True)
class VisitRules:
    """Parameters of the visit and repeat-visitor definitions (see the module docstring)."""

    repeat_window_days: int = 180
    staff_min_visit_s: int | None = 4 * 3600
    staff_min_days: int | None = None
    staff_days_window: int = 7

    def __post_init__(self) -> None:
        if self.repeat_window_days < 1:
            raise BadInput(f"repeat_window_days must be ≥ 1, got {self.repeat_window_days}")
        if self.staff_min_visit_s is not None and self.staff_min_visit_s <= 0:
            raise BadInput(f"staff_min_visit_s must be > 0, got {self.staff_min_visit_s}")
        if self.staff_days_window < 1:
            raise BadInput(f"staff_days_window must be ≥ 1, got {self.staff_days_window}")
        if self.staff_min_days is not None and not (
            1 <= self.staff_min_days <= self.staff_days_window
        ):
            raise BadInput(
                f"staff_min_days must be between 1 and staff_days_window "
                f"({self.staff_days_window}), got {self.staff_min_days}"
            )


def store_visits(
    events: ibis.Table,
    *,
    staff: ibis.Table | None = None,
    offsets: ibis.Table | None = None,
    days: Sequence[date] | None = None,
    rules: VisitRules | None = None,
    default_utc_offset_s: int = DEFAULT_UTC_OFFSET_S,
) -> ibis.Table:
    """``mart_store_visits`` rows: customer visits of ``events`` (``raw_visitor_events``).

    ``days`` restricts the output to those business dates (the input may hold earlier dates
    for the staff-days rule). ``BadInput`` names any missing input column.
    """
    rules = rules or VisitRules()
    require(events, EVENT_COLUMNS, "visitor_events")
    e = events.filter(events.person_id.notnull() & events.event.isin(("entry", "exit")))
    e = e.select(*VISIT_KEYS, "camera_id", "event", "ts", _track=e.track_id.coalesce(""))
    # 1. Entry → exit of the same track (the analyzer followed the person out).
    by_track = ibis.window(group_by=[*VISIT_KEYS, "_track"], order_by=[e.ts, e.event])
    e = e.mutate(
        _next_event=e.event.lead().over(by_track),
        _next_ts=e.ts.lead().over(by_track),
        _prev_event=e.event.lag().over(by_track),
    )
    same_track = e.filter((e.event == "entry") & (e._next_event == "exit")).select(
        *VISIT_KEYS, "camera_id", entry_ts=ibis._.ts, exit_ts=ibis._._next_ts
    )
    # 2. The rest, per person: an entry with the person's next event if that is an exit.
    rest = e.filter(
        ((e.event == "entry") & (e._next_event.isnull() | (e._next_event != "exit")))
        | ((e.event == "exit") & (e._prev_event.isnull() | (e._prev_event != "entry")))
    ).select(*VISIT_KEYS, "camera_id", "event", "ts")
    by_person = ibis.window(group_by=list(VISIT_KEYS), order_by=[rest.ts, rest.event])
    rest = rest.mutate(
        _next_event=rest.event.lead().over(by_person), _next_ts=rest.ts.lead().over(by_person)
    )
    entries = rest.filter(rest.event == "entry")
    exit_ts = ibis.ifelse(
        entries._next_event == "exit", entries._next_ts, ibis.null(entries.ts.type())
    )
    by_order = entries.select(*VISIT_KEYS, "camera_id", entry_ts=entries.ts, exit_ts=exit_ts)
    visits = _merge_overlapping(ibis.union(same_track, by_order, distinct=False))
    visits = visits.mutate(
        dwell_s=visits.exit_ts.epoch_seconds().cast("int64")
        - visits.entry_ts.epoch_seconds().cast("int64")
    )
    visits = _without_staff(visits, staff, rules)
    if days is not None:
        wanted = sorted(set(days))
        visits = visits.filter(visits.business_date.isin(wanted)) if wanted else visits.limit(0)
    visits = with_offsets(visits, offsets, default_utc_offset_s)
    visits = visits.mutate(entry_hour=local_hour(visits.entry_ts, visits._offset_s))
    return visits.select(*cast_to(MART_STORE_VISITS))


def _merge_overlapping(visits: ibis.Table) -> ibis.Table:
    """One row per run of overlapping visits of a person at a store on a date (gaps and islands).

    A visit starts a new run when it enters after every earlier visit of the person has ended;
    the frame is ROWS up to the row before, so ties in ``entry_ts`` merge whatever their order.
    """
    v = visits.mutate(_end=visits.exit_ts.coalesce(visits.entry_ts))
    before = ibis.window(
        group_by=list(VISIT_KEYS), order_by=[v.entry_ts, v._end, v.camera_id], rows=(None, -1)
    )
    v = v.mutate(_ended=v._end.max().over(before))
    v = v.mutate(_starts=ibis.ifelse(v._ended.isnull() | (v.entry_ts > v._ended), 1, 0))
    upto = ibis.window(
        group_by=list(VISIT_KEYS), order_by=[v.entry_ts, v._end, v.camera_id], rows=(None, 0)
    )
    v = v.mutate(_run=v._starts.sum().over(upto))
    run = [*VISIT_KEYS, "_run"]
    first = ibis.window(group_by=run, order_by=[v.entry_ts, v.camera_id])
    v = v.mutate(
        _first=ibis.row_number().over(first), _exit=v.exit_ts.max().over(ibis.window(group_by=run))
    )
    v = v.filter(v._first == 0)
    return v.select(*VISIT_KEYS, "camera_id", "entry_ts", exit_ts=v._exit)


def _without_staff(visits: ibis.Table, staff: ibis.Table | None, rules: VisitRules) -> ibis.Table:
    if staff is not None:
        require(staff, STAFF_COLUMNS, "staff")
        enrolled = staff.select(_s_tenant=staff.tenant_id, _s_person=staff.person_id).distinct()
        visits = visits.anti_join(
            enrolled,
            [visits.tenant_id == enrolled._s_tenant, visits.person_id == enrolled._s_person],
        )
    flagged: list[ibis.Table] = []
    if rules.staff_min_visit_s is not None:
        long = visits.filter(visits.dwell_s >= rules.staff_min_visit_s)
        flagged.append(long.select("tenant_id", "person_id", "business_date").distinct())
    if rules.staff_min_days is not None:
        seen = visits.select("tenant_id", "person_id", "business_date").distinct()
        past = seen.select(
            _p_tenant=seen.tenant_id, _p_person=seen.person_id, _p_date=seen.business_date
        )
        lookback = ibis.interval(days=rules.staff_days_window - 1)
        pairs = seen.join(
            past,
            [
                seen.tenant_id == past._p_tenant,
                seen.person_id == past._p_person,
                past._p_date <= seen.business_date,
                past._p_date >= seen.business_date - lookback,
            ],
        )
        counted = pairs.group_by(["tenant_id", "person_id", "business_date"]).aggregate(
            _days=pairs._p_date.nunique()
        )
        often = counted.filter(counted._days >= rules.staff_min_days)
        flagged.append(often.select("tenant_id", "person_id", "business_date"))
    for person_days in flagged:
        f = person_days.select(
            _f_tenant=person_days.tenant_id,
            _f_person=person_days.person_id,
            _f_date=person_days.business_date,
        )
        visits = visits.anti_join(
            f,
            [
                visits.tenant_id == f._f_tenant,
                visits.person_id == f._f_person,
                visits.business_date == f._f_date,
            ],
        )
    return visits
