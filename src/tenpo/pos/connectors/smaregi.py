"""Pull Smaregi transactions from the Platform API and land them like a pushed upload.

An app access token comes from ``POST {id_url}/app/{contract_id}/token`` (HTTP Basic with the
app's client id and secret, ``grant_type=client_credentials``, scope
``pos.transactions:read``), cached until shortly before it expires and fetched again after a
401. Transactions come from ``GET {api_url}/{contract_id}/pos/transactions`` with
``with_details=all``, in windows of at most 31 days (the API's limit) and pages of ``limit``
(at most 1,000; the API caps pages with details lower, so the default is 100), following the
``Link: <…>; rel="next"`` header when the API sends one, else until a short page.

Incremental pulls (:meth:`SmaregiConnector.pull`) select by update time
(``upd_date_time-from``/``-to``) from a cursor kept in the lake
(``state/connectors/smaregi/{tenant}/{contract}.json``), so edits and cancellations made
after the sale come again; the cursor moves only after a window's pages are all landed, so a
crash re-reads a window (same bytes land once; a transaction re-sent in other bytes replaces
its earlier version in the warehouse). Backfills (:meth:`SmaregiConnector.backfill`) select
by transaction time and do not move the cursor. 429 and 5xx answers and transport errors are
retried with exponential back-off (``Retry-After`` honoured); other errors raise
:class:`SmaregiError` naming the answer.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tenpo.core.errors import ConfigError, TenpoError
from tenpo.core.ids import utcnow
from tenpo.lake.base import Lake
from tenpo.lake.landing import LandingZone
from tenpo.pos.vendors.smaregi import KEY, check_sales

__all__ = [
    "MAX_WINDOW",
    "PullReport",
    "SmaregiConfig",
    "SmaregiConnector",
    "SmaregiError",
    "config_from_env",
    "run_pull",
    "windows",
]

log = logging.getLogger(__name__)

MAX_WINDOW = timedelta(days=31)
"""The longest date-time range the API accepts in one query."""
MAX_LIMIT = 1000
SCOPE = "pos.transactions:read"
SOURCE = f"pos_{KEY}"


class SmaregiError(TenpoError):
    """The Smaregi API refused a request (after the retries, for the retryable answers)."""


@dataclass(frozen=True)
class SmaregiConfig:
    """Where and as whom to pull: one Smaregi contract into one tenpo tenant."""

    tenant_id: str
    contract_id: str
    client_id: str
    client_secret: str = field(repr=False)
    api_url: str = "https://api.smaregi.jp"
    id_url: str = "https://id.smaregi.jp"
    limit: int = 100
    timezone: str = "Asia/Tokyo"
    start: datetime | None = None
    """Where a first incremental pull starts (default: 31 days ago)."""
    retries: int = 5
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}, not {self.limit}")


@dataclass
class PullReport:
    """What one pull did."""

    windows: int = 0
    pages: int = 0
    transactions: int = 0
    landed: int = 0
    """Pages landed as new objects (a re-read page of the same bytes lands once)."""
    requests: int = 0
    retries: int = 0
    cursor: datetime | None = None


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _next_link(header: str | None) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header."""
    for part in (header or "").split(","):
        url, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return url.strip().strip("<>")
    return None


class SmaregiConnector:
    """Pulls one contract's transactions and lands each page as a ``pos_smaregi`` object."""

    def __init__(
        self,
        config: SmaregiConfig,
        lake: Lake,
        landing: LandingZone,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.lake = lake
        self.landing = landing
        self._client = client or httpx.Client(timeout=60)
        self._own_client = client is None
        self._sleep = sleep
        self._now = now
        self._token: str | None = None
        self._token_until = datetime.min.replace(tzinfo=UTC)

    def close(self) -> None:
        """Close the HTTP client if this connector opened it."""
        if self._own_client:
            self._client.close()

    # -- cursor --------------------------------------------------------------------------------
    @property
    def cursor_key(self) -> str:
        """Lake key of this contract's cursor."""
        c = self.config
        return f"state/connectors/{KEY}/{c.tenant_id}/{c.contract_id}.json"

    def cursor(self) -> datetime | None:
        """The update time up to which every transaction was landed (None before a pull)."""
        if not self.lake.exists(self.cursor_key):
            return None
        doc = json.loads(self.lake.get(self.cursor_key))
        return datetime.fromisoformat(doc["updated_to"])

    def _save_cursor(self, ts: datetime) -> None:
        self.lake.put(self.cursor_key, json.dumps({"updated_to": ts.isoformat()}).encode())

    # -- pulling -------------------------------------------------------------------------------
    def pull(self, until: datetime | None = None) -> PullReport:
        """Land every transaction updated since the cursor (up to ``until``, default now),
        window by window, moving the cursor after each window."""
        report = PullReport()
        end = until or self._now()
        start = self.cursor() or self.config.start or end - MAX_WINDOW
        for lo, hi in windows(start, end):
            self._window("upd_date_time", lo, hi, report)
            self._save_cursor(hi)
            report.cursor = hi
        return report

    def backfill(self, start: datetime, end: datetime) -> PullReport:
        """Land every transaction made between ``start`` and ``end`` (transaction time); the
        cursor stays where it is."""
        if end <= start:
            raise ValueError(f"backfill end {end} is not after its start {start}")
        report = PullReport()
        for lo, hi in windows(start, end):
            self._window("transaction_date_time", lo, hi, report)
        return report

    def _window(self, by: str, lo: datetime, hi: datetime, report: PullReport) -> None:
        report.windows += 1
        for page in self._pages(by, lo, hi, report):
            report.pages += 1
            report.transactions += len(page)
            if not page:
                continue
            body = json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode()
            check_sales(body)  # what the gateway would refuse, refused here too
            landed = self.landing.land(
                SOURCE,
                self.config.tenant_id,
                body,
                "json",
                content_type="application/json",
                meta={"vendor": KEY, "connector": f"{KEY}:{self.config.contract_id}"},
            )
            report.landed += int(landed.created)
        log.info(
            "smaregi %s %s %s..%s: %d pages, %d transactions",
            self.config.contract_id, by, _iso(lo), _iso(hi), report.pages, report.transactions,
        )  # fmt: skip

    def _pages(
        self, by: str, lo: datetime, hi: datetime, report: PullReport
    ) -> Iterator[list[Any]]:
        c = self.config
        url: str | None = f"{c.api_url.rstrip('/')}/{c.contract_id}/pos/transactions"
        params: dict[str, Any] | None = {
            f"{by}-from": _iso(lo),
            f"{by}-to": _iso(hi),
            "with_details": "all",
            "limit": c.limit,
            "page": 1,
            "sort": "transactionHeadId",
        }
        page_no = 1
        while url is not None:
            resp = self._get(url, params, report)
            doc = resp.json()
            if not isinstance(doc, list):
                raise SmaregiError(f"GET {url}: expected a JSON array, got {type(doc).__name__}")
            yield doc
            link = _next_link(resp.headers.get("Link"))
            if link is not None:
                url, params = link, None
            elif len(doc) < c.limit or "Link" in resp.headers:
                url = None
            else:
                page_no += 1
                assert params is not None
                params = {**params, "page": page_no}

    # -- HTTP ----------------------------------------------------------------------------------
    def _get(self, url: str, params: dict[str, Any] | None, report: PullReport) -> httpx.Response:
        refreshed = False
        attempt = 0
        while True:
            report.requests += 1
            resp: httpx.Response | None = None
            try:
                resp = self._client.get(
                    url, params=params, headers={"Authorization": f"Bearer {self._access_token()}"}
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if resp is not None:
                if resp.status_code == 401 and not refreshed:
                    self._token, refreshed = None, True  # expired or revoked: ask once more
                    continue
                if resp.status_code < 400:
                    return resp
                problem = f"{resp.status_code} {resp.text[:300]}"
                if resp.status_code != 429 and resp.status_code < 500:
                    raise SmaregiError(f"GET {url}: {problem}")
            attempt += 1
            if attempt > self.config.retries:
                raise SmaregiError(f"GET {url}: {problem} (after {attempt} attempts)")
            report.retries += 1
            self._sleep(self._delay(attempt, resp))
            log.warning("smaregi GET %s: %s; retry %d", url, problem, attempt)

    def _delay(self, attempt: int, resp: httpx.Response | None) -> float:
        after = resp.headers.get("Retry-After") if resp is not None else None
        if after is not None and after.isdigit():
            return float(after)
        return float(self.config.backoff_s * 2 ** (attempt - 1))

    def _access_token(self) -> str:
        if self._token is not None and self._now() < self._token_until:
            return self._token
        c = self.config
        basic = base64.b64encode(f"{c.client_id}:{c.client_secret}".encode()).decode()
        url = f"{c.id_url.rstrip('/')}/app/{c.contract_id}/token"
        resp = self._client.post(
            url,
            data={"grant_type": "client_credentials", "scope": SCOPE},
            headers={"Authorization": f"Basic {basic}"},
        )
        if resp.status_code != 200:
            raise SmaregiError(f"POST {url}: {resp.status_code} {resp.text[:300]}")
        doc = resp.json()
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise SmaregiError(f"POST {url}: no access_token in the answer")
        lifetime = int(doc.get("expires_in") or 3600)
        self._token = token
        self._token_until = self._now() + timedelta(seconds=max(0, lifetime - 60))
        return token


def windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive windows of at most :data:`MAX_WINDOW`."""
    found = []
    lo = start
    while lo < end:
        hi = min(lo + MAX_WINDOW, end)
        found.append((lo, hi))
        lo = hi
    return found


def config_from_env(tenant_id: str, environ: Mapping[str, str]) -> SmaregiConfig:
    """The contract to pull from ``SMAREGI_CONTRACT_ID``, ``SMAREGI_CLIENT_ID``,
    ``SMAREGI_CLIENT_SECRET`` (and optionally ``SMAREGI_API_URL``, ``SMAREGI_ID_URL``,
    ``SMAREGI_LIMIT``); :class:`ConfigError` naming what is missing."""
    missing = [
        name
        for name in ("SMAREGI_CONTRACT_ID", "SMAREGI_CLIENT_ID", "SMAREGI_CLIENT_SECRET")
        if not environ.get(name)
    ]
    if missing:
        raise ConfigError(f"set {', '.join(missing)} to pull from Smaregi")
    try:
        return SmaregiConfig(
            tenant_id=tenant_id,
            contract_id=environ["SMAREGI_CONTRACT_ID"],
            client_id=environ["SMAREGI_CLIENT_ID"],
            client_secret=environ["SMAREGI_CLIENT_SECRET"],
            api_url=environ.get("SMAREGI_API_URL") or SmaregiConfig.api_url,
            id_url=environ.get("SMAREGI_ID_URL") or SmaregiConfig.id_url,
            limit=int(environ.get("SMAREGI_LIMIT") or SmaregiConfig.limit),
        )
    except ValueError as exc:
        raise ConfigError(f"SMAREGI_LIMIT: {exc}") from exc


def run_pull(
    tenant_id: str,
    lake: Lake,
    landing: LandingZone,
    *,
    environ: Mapping[str, str],
    until: datetime | None = None,
    backfill: tuple[datetime, datetime] | None = None,
) -> PullReport:
    """One incremental pull (or the ``backfill`` range) of the contract in ``environ``."""
    connector = SmaregiConnector(config_from_env(tenant_id, environ), lake, landing)
    try:
        return connector.backfill(*backfill) if backfill else connector.pull(until)
    finally:
        connector.close()
