"""Alert rules and their evaluation (pure: data frames in, alerts out).

Rule kinds (``Rule.kind``) and what each looks at on the evaluated ``business_date``:

- ``kpi_outside_forecast``: the store's daily ``kpi`` outside its forecast interval at
  ``level`` (80 or 95) → ``drop`` below it or ``spike`` above it.
- ``device_silent``: a device whose ``last_seen`` is more than ``minutes`` before ``now``.
- ``receipts_without_visitors``: at least ``min_hours`` local hours with receipts but zero
  counted visitors (counter and POS disagree).
- ``source_missing``: a store-date without POS rows (``source: pos``) or counter rows
  (``source: counter``) while the store had that source in the preceding week.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from tenpo.core.errors import BadInput

__all__ = ["RULE_KINDS", "Alert", "Rule", "alert_id", "evaluate"]

RULE_KINDS: tuple[str, ...] = (
    "kpi_outside_forecast",
    "device_silent",
    "receipts_without_visitors",
    "source_missing",
)


@dataclass(frozen=True)
class Rule:
    """One tenant's rule; ``params`` per kind (see the module docstring), ``stores`` limits it."""

    tenant_id: str
    rule_id: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    stores: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise BadInput(f"unknown rule kind {self.kind!r}; expected one of {RULE_KINDS}")
        if self.kind == "kpi_outside_forecast":
            if self.params.get("kpi") not in ("visitors", "transactions", "net_sales"):
                raise BadInput("kpi_outside_forecast needs kpi visitors|transactions|net_sales")
            if int(self.params.get("level", 95)) not in (80, 95):
                raise BadInput("kpi_outside_forecast level must be 80 or 95")
        if self.kind == "device_silent" and not 1 <= int(self.params.get("minutes", 15)) <= 10080:
            raise BadInput("device_silent minutes must be between 1 and 10080")
        if self.kind == "source_missing" and self.params.get("source") not in ("pos", "counter"):
            raise BadInput("source_missing needs source pos|counter")

    def covers(self, store_id: str) -> bool:
        """Whether the rule applies to ``store_id``."""
        return self.stores is None or store_id in self.stores


@dataclass(frozen=True)
class Alert:
    """Something a rule found; ``alert_id`` is stable across re-evaluations."""

    alert_id: str
    tenant_id: str
    rule_id: str
    kind: str
    store_id: str
    subject: str  # the device, or the KPI, or the source
    business_date: date
    message: str
    value: float | None = None
    expected_low: float | None = None
    expected_high: float | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON body of the webhook (and of the API's alert list)."""
        return {
            "alert_id": self.alert_id,
            "tenant_id": self.tenant_id,
            "rule_id": self.rule_id,
            "kind": self.kind,
            "store_id": self.store_id,
            "subject": self.subject,
            "business_date": self.business_date.isoformat(),
            "message": self.message,
            "value": self.value,
            "expected_low": self.expected_low,
            "expected_high": self.expected_high,
        }


def alert_id(tenant_id: str, rule_id: str, store_id: str, subject: str, day: date) -> str:
    """Stable id of the alert a rule raises about ``subject`` of a store on ``day``."""
    text = "\x1f".join((tenant_id, rule_id, store_id, subject, day.isoformat()))
    return "al_" + hashlib.sha256(text.encode()).hexdigest()[:24]


def evaluate(
    rules: Iterable[Rule],
    day: date,
    *,
    daily: pd.DataFrame,
    hourly: pd.DataFrame | None = None,
    forecast: pd.DataFrame | None = None,
    devices: pd.DataFrame | None = None,
    now: datetime | None = None,
) -> list[Alert]:
    """Alerts of ``rules`` on ``day``.

    ``daily``: mart_store_daily rows (tenant_id, store_id, business_date, KPIs, has_pos,
    has_counter; the week before ``day`` too for ``source_missing``); ``hourly``:
    mart_store_hourly rows; ``forecast``: day rows of mart_store_forecast; ``devices``:
    tenant_id, store_id, device_id, last_seen (UTC); ``now`` (UTC) for ``device_silent``.
    """
    alerts: list[Alert] = []
    for rule in rules:
        tenant_daily = daily[daily["tenant_id"] == rule.tenant_id] if len(daily) else daily
        if rule.kind == "kpi_outside_forecast":
            alerts += _outside_forecast(rule, day, tenant_daily, forecast)
        elif rule.kind == "device_silent":
            alerts += _silent(rule, day, devices, now)
        elif rule.kind == "receipts_without_visitors":
            alerts += _no_visitors(rule, day, hourly)
        else:
            alerts += _source_missing(rule, day, tenant_daily)
    return sorted(alerts, key=lambda a: a.alert_id)


def _alert(rule: Rule, store: str, subject: str, day: date, message: str, **kw: Any) -> Alert:
    return Alert(
        alert_id(rule.tenant_id, rule.rule_id, store, subject, day),
        rule.tenant_id,
        rule.rule_id,
        rule.kind,
        store,
        subject,
        day,
        message,
        **kw,
    )


def _outside_forecast(
    rule: Rule, day: date, daily: pd.DataFrame, forecast: pd.DataFrame | None
) -> list[Alert]:
    if forecast is None or forecast.empty or daily.empty:
        return []
    kpi, level = str(rule.params["kpi"]), int(rule.params.get("level", 95))
    fc = forecast[
        (forecast["tenant_id"] == rule.tenant_id)
        & (forecast["kpi"] == kpi)
        & (forecast["business_date"] == day)
    ]
    bounds = {r.store_id: (r[f"lo_{level}"], r[f"hi_{level}"]) for _, r in fc.iterrows()}
    out: list[Alert] = []
    for _, row in daily[daily["business_date"] == day].iterrows():
        store = str(row["store_id"])
        value = row.get(kpi)
        if not rule.covers(store) or store not in bounds or value is None or pd.isna(value):
            continue
        low, high = (float(b) for b in bounds[store])
        actual = float(value)
        if low <= actual <= high:
            continue
        way = "drop" if actual < low else "spike"
        out.append(
            _alert(
                rule,
                store,
                kpi,
                day,
                f"{kpi} {way}: {actual:,.0f} outside the {level} % forecast interval "
                f"{low:,.0f}-{high:,.0f}",
                value=actual,
                expected_low=low,
                expected_high=high,
            )
        )
    return out


def _silent(
    rule: Rule, day: date, devices: pd.DataFrame | None, now: datetime | None
) -> list[Alert]:
    if devices is None or devices.empty or now is None:
        return []
    minutes = int(rule.params.get("minutes", 15))
    out: list[Alert] = []
    for _, row in devices[devices["tenant_id"] == rule.tenant_id].iterrows():
        store, device = str(row["store_id"]), str(row["device_id"])
        seen = row["last_seen"]
        if not rule.covers(store):
            continue
        silent = (
            math.inf
            if seen is None or pd.isna(seen)
            else (now - pd.Timestamp(seen).to_pydatetime()) / timedelta(minutes=1)
        )
        if silent > minutes:
            since = "never seen" if math.isinf(silent) else f"silent for {silent:,.0f} min"
            out.append(
                _alert(rule, store, device, day, f"device {device} {since} (limit {minutes} min)")
            )
    return out


def _no_visitors(rule: Rule, day: date, hourly: pd.DataFrame | None) -> list[Alert]:
    if hourly is None or hourly.empty:
        return []
    rows = hourly[(hourly["tenant_id"] == rule.tenant_id) & (hourly["business_date"] == day)]
    bad = rows[(rows["transactions"].fillna(0) > 0) & (rows["visitors"].fillna(0) == 0)]
    least = int(rule.params.get("min_hours", 1))
    out: list[Alert] = []
    for store, hours in bad.groupby("store_id"):
        if len(hours) >= least and rule.covers(str(store)):
            listed = ", ".join(f"{int(h):02d}:00" for h in sorted(hours["hour"]))
            out.append(
                _alert(
                    rule,
                    str(store),
                    "counter/pos",
                    day,
                    f"{int(hours['transactions'].sum())} receipts with zero visitors at {listed}",
                    value=float(len(hours)),
                )
            )
    return out


def _source_missing(rule: Rule, day: date, daily: pd.DataFrame) -> list[Alert]:
    flag = "has_pos" if rule.params["source"] == "pos" else "has_counter"
    if daily.empty:
        return []
    week = daily[
        (daily["business_date"] < day) & (daily["business_date"] >= day - timedelta(days=7))
    ]
    expected = {str(s) for s in week[week[flag].fillna(False).astype(bool)]["store_id"]}
    today = daily[daily["business_date"] == day]
    present = {str(s) for s in today[today[flag].fillna(False).astype(bool)]["store_id"]}
    source = str(rule.params["source"])
    return [
        _alert(rule, store, source, day, f"no {source} data for {day} (present the week before)")
        for store in sorted(expected - present)
        if rule.covers(store)
    ]
