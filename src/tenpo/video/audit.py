"""Counting-accuracy audit: the analyzer's entries/exits against hand-counted crossings.

The truth is a CSV ``ts,direction,person`` (``ts`` ISO 8601 with an offset, ``direction``
entry | exit, ``person`` an optional label that names the same person on every day). Each
predicted event is matched one-to-one to a truth crossing of the same direction within
``tolerance_s`` (optimal assignment on the time difference). Per direction:

- ``precision`` = matched / predicted, ``recall`` = matched / truth;
- ``count_accuracy`` = 1 − |predicted − truth| / truth (what people-counter vendors sell as
  accuracy: the count, whether or not each event is the right one); null when truth is 0.

Re-identification, over matched events whose truth has a person label:

- ``same_person_same_id``: share of a person's events that carry that person's most frequent
  PersonID (a missing PersonID counts against);
- ``false_merge_rate``: share of events whose PersonID's most frequent person is someone
  else (two people given one PersonID), and ``merged_pairs`` the pairs of people sharing one;
- across days (:func:`audit_days`), ``reid_across_days``: share of a later day's events of a
  person seen on an earlier day that carry the PersonID that person had then.

On the platform (``tenpo video audit``, ``GET /v1/video/audits/{camera_id}``): the
predictions are the camera's rows of ``raw_visitor_events`` on the business date
(:func:`predicted_crossings`), and each report is kept in the lake at
``artifacts/video_audit/tenant={t}/camera={c}/date={d}.json`` (:func:`save_report`; an audit
of several dates also writes ``dates={first}..{last}.json`` with ``reid_across_days``).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tenpo.core.errors import BadInput
from tenpo.lake.base import Lake
from tenpo.lake.keys import artifact_key, table_prefix

__all__ = [
    "AuditReport",
    "Crossing",
    "DirectionFigures",
    "ReidFigures",
    "audit",
    "audit_days",
    "load_report",
    "predicted_crossings",
    "read_truth_csv",
    "report_key",
    "save_report",
    "truth_by_date",
]

REPORT_JOB = "video_audit"

Direction = Literal["entry", "exit"]


@dataclass(frozen=True)
class Crossing:
    """One crossing: when, which way, who (truth label or PersonID; may be empty)."""

    ts: datetime
    direction: Direction
    who: str | None = None


def read_truth_csv(text: str) -> list[Crossing]:
    """Hand-counted crossings from CSV ``ts,direction[,person]``; errors name the line."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        raise BadInput("truth CSV is empty (expected a header ts,direction,person)")
    header = [h.strip().lower() for h in rows[0]]
    if "ts" not in header or "direction" not in header:
        raise BadInput(f"truth CSV header must name ts and direction, got {rows[0]}")
    i_ts, i_dir = header.index("ts"), header.index("direction")
    i_who = header.index("person") if "person" in header else None
    out: list[Crossing] = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        try:
            ts = datetime.fromisoformat(row[i_ts].strip())
        except (ValueError, IndexError) as exc:
            raise BadInput(f"truth CSV line {n}: ts is not an ISO 8601 date-time") from exc
        if ts.tzinfo is None:
            raise BadInput(f"truth CSV line {n}: ts needs a UTC offset")
        direction = row[i_dir].strip().lower() if len(row) > i_dir else ""
        if direction not in ("entry", "exit"):
            raise BadInput(f"truth CSV line {n}: direction must be entry or exit")
        who = row[i_who].strip() if i_who is not None and len(row) > i_who else ""
        out.append(Crossing(ts, "entry" if direction == "entry" else "exit", who or None))
    return sorted(out, key=lambda c: c.ts)


class DirectionFigures(BaseModel):
    """Counting figures of one direction."""

    model_config = ConfigDict(frozen=True)

    truth: int
    predicted: int
    matched: int
    precision: float | None
    recall: float | None
    count_accuracy: float | None


class ReidFigures(BaseModel):
    """Re-identification figures over matched, labelled events."""

    model_config = ConfigDict(frozen=True)

    labelled_events: int
    persons: int
    person_ids: int
    same_person_same_id: float | None
    false_merge_rate: float | None
    merged_pairs: list[tuple[str, str]] = Field(default_factory=list)


class AuditReport(BaseModel):
    """One audit: per-direction counting figures, re-identification, and the misses."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str = ""
    camera_id: str = ""
    dates: list[date] = Field(default_factory=list)
    tolerance_s: float
    truth_sha256: str = Field("", description="SHA-256 of the hand-count CSV audited against.")
    entry: DirectionFigures
    exit: DirectionFigures
    reid: ReidFigures
    reid_across_days: float | None = None
    missed: list[str] = Field(default_factory=list, description="Truth crossings unmatched.")
    spurious: list[str] = Field(default_factory=list, description="Predictions unmatched.")


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _match(
    pred: Sequence[Crossing], truth: Sequence[Crossing], tol: float
) -> list[tuple[int, int]]:
    if not pred or not truth:
        return []
    from scipy.optimize import linear_sum_assignment  # slow to import; only audits need it

    dt = np.abs(
        np.array([[(p.ts - t.ts).total_seconds() for t in truth] for p in pred], dtype=float)
    )
    cost = np.where(dt <= tol, dt, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < 1e6]


def _modal(values: Sequence[str | None]) -> str | None:
    counted = Counter(v for v in values if v is not None)
    return counted.most_common(1)[0][0] if counted else None


def audit(
    predicted: Sequence[Crossing],
    truth: Sequence[Crossing],
    *,
    tolerance_s: float = 1.0,
    tenant_id: str = "",
    camera_id: str = "",
    dates: Sequence[date] = (),
) -> AuditReport:
    """Compare predicted events (``who`` = PersonID) with the truth (``who`` = label)."""
    if tolerance_s <= 0:
        raise BadInput(f"tolerance must be positive, got {tolerance_s}")
    figures: dict[str, DirectionFigures] = {}
    pairs: list[tuple[Crossing, Crossing]] = []  # (predicted, truth)
    missed: list[str] = []
    spurious: list[str] = []
    for direction in ("entry", "exit"):
        p = [c for c in predicted if c.direction == direction]
        t = [c for c in truth if c.direction == direction]
        matched = _match(p, t, tolerance_s)
        pairs += [(p[i], t[j]) for i, j in matched]
        got_p, got_t = {i for i, _ in matched}, {j for _, j in matched}
        missed += [
            f"{direction} {c.ts.isoformat()} {c.who or ''}".strip()
            for j, c in enumerate(t)
            if j not in got_t
        ]
        spurious += [f"{direction} {c.ts.isoformat()}" for i, c in enumerate(p) if i not in got_p]
        figures[direction] = DirectionFigures(
            truth=len(t),
            predicted=len(p),
            matched=len(matched),
            precision=_ratio(len(matched), len(p)),
            recall=_ratio(len(matched), len(t)),
            count_accuracy=round(1 - abs(len(p) - len(t)) / len(t), 4) if t else None,
        )
    return AuditReport(
        tenant_id=tenant_id,
        camera_id=camera_id,
        dates=list(dates),
        tolerance_s=tolerance_s,
        entry=figures["entry"],
        exit=figures["exit"],
        reid=_reid([(t.who, p.who) for p, t in pairs if t.who]),
        missed=missed,
        spurious=spurious,
    )


def _reid(labelled: Sequence[tuple[str | None, str | None]]) -> ReidFigures:
    by_person: dict[str, list[str | None]] = defaultdict(list)
    by_id: dict[str, list[str]] = defaultdict(list)
    for label, pid in labelled:
        assert label is not None
        by_person[label].append(pid)
        if pid is not None:
            by_id[pid].append(label)
    n = len(labelled)
    same = sum(
        sum(1 for v in ids if v is not None and v == _modal(ids)) for ids in by_person.values()
    )
    merged = sum(len(labels) - Counter(labels).most_common(1)[0][1] for labels in by_id.values())
    pairs = sorted(
        {(a, b) for labels in by_id.values() for a in set(labels) for b in set(labels) if a < b}
    )
    with_id = sum(len(v) for v in by_id.values())
    return ReidFigures(
        labelled_events=n,
        persons=len(by_person),
        person_ids=len(by_id),
        same_person_same_id=_ratio(same, n),
        false_merge_rate=_ratio(merged, with_id),
        merged_pairs=pairs,
    )


def audit_days(
    days: Sequence[tuple[date, Sequence[Crossing], Sequence[Crossing]]],
    *,
    tolerance_s: float = 1.0,
    tenant_id: str = "",
    camera_id: str = "",
) -> tuple[AuditReport, list[AuditReport]]:
    """Audit several dates: (the report over all of them, one report per date).

    The overall report adds ``reid_across_days``: a person's events on a later day that carry
    the PersonID the person had (most often) on the earliest day they were seen.
    """
    per_day = [
        audit(p, t, tolerance_s=tolerance_s, tenant_id=tenant_id, camera_id=camera_id, dates=[d])
        for d, p, t in days
    ]
    everything = audit(
        [c for _, p, _ in days for c in p],
        [c for _, _, t in days for c in t],
        tolerance_s=tolerance_s,
        tenant_id=tenant_id,
        camera_id=camera_id,
        dates=[d for d, _, _ in days],
    )
    first_id: dict[str, str | None] = {}
    hits = total = 0
    for _, p, t in sorted(days, key=lambda x: x[0]):
        day_pairs: dict[str, list[str | None]] = defaultdict(list)
        for direction in ("entry", "exit"):
            pp = [c for c in p if c.direction == direction]
            tt = [c for c in t if c.direction == direction]
            for i, j in _match(pp, tt, tolerance_s):
                who = tt[j].who
                if who:
                    day_pairs[who].append(pp[i].who)
        for label, ids in day_pairs.items():
            if label in first_id:
                total += len(ids)
                hits += sum(1 for v in ids if v is not None and v == first_id[label])
        for label, ids in day_pairs.items():
            first_id.setdefault(label, _modal(ids))
    everything = everything.model_copy(update={"reid_across_days": _ratio(hits, total)})
    return everything, per_day


def predicted_crossings(lake: Lake, tenant_id: str, camera_id: str, day: date) -> list[Crossing]:
    """The camera's entries/exits of ``day`` in ``raw_visitor_events`` (``who`` = PersonID)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tenpo.streamer._tables import dedupe_table

    keys = [k for k in lake.list(table_prefix("raw_visitor_events", tenant_id, day))]
    parts = [pq.read_table(pa.BufferReader(lake.get(k))) for k in keys if k.endswith(".parquet")]
    if not parts:
        return []
    rows = dedupe_table("raw_visitor_events", pa.concat_tables(parts)).to_pylist()
    return sorted(
        (
            Crossing(r["ts"], "entry" if r["event"] == "entry" else "exit", r["person_id"])
            for r in rows
            if r["camera_id"] == camera_id
        ),
        key=lambda c: c.ts,
    )


def truth_by_date(
    truth: Sequence[Crossing], days: Sequence[date], timezone: str
) -> dict[date, list[Crossing]]:
    """The truth crossings split by local business date; one outside ``days`` is an error."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(timezone)
    out: dict[date, list[Crossing]] = {d: [] for d in days}
    for c in truth:
        local = c.ts.astimezone(tz).date()
        if local not in out:
            raise BadInput(
                f"truth crossing at {c.ts.isoformat()} falls on {local} ({timezone}),"
                f" not on an audited date ({', '.join(d.isoformat() for d in days)})"
            )
        out[local].append(c)
    return out


def report_key(tenant_id: str, camera_id: str, days: Sequence[date]) -> str:
    """Lake key of the audit report of ``days`` (one date or a first..last range)."""
    if not days:
        raise BadInput("an audit needs at least one date")
    first, last = min(days), max(days)
    name = f"date={first}.json" if len(days) == 1 else f"dates={first}..{last}.json"
    return artifact_key(REPORT_JOB, f"tenant={tenant_id}/camera={camera_id}", name)


def save_report(lake: Lake, report: AuditReport) -> str:
    """Write ``report`` to the lake (replacing an earlier audit of the same dates); its key."""
    key = report_key(report.tenant_id, report.camera_id, report.dates)
    lake.put(key, report.model_dump_json(indent=1).encode())
    return key


def load_report(lake: Lake, tenant_id: str, camera_id: str, day: date) -> AuditReport | None:
    """The saved audit report of one camera and date, None when there is none."""
    key = report_key(tenant_id, camera_id, [day])
    if not lake.exists(key):
        return None
    return AuditReport.model_validate_json(lake.get(key))
