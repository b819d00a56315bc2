"""The stages of the whole platform run in one process, shared by ``tenpo demo`` and the scale
bench: register a simulated chain, send its files as the stores would, read every store's KPIs
back through the read API, and compare them with the simulator's ground truth.

Stages take plain callbacks for progress (no Rich here): the CLI draws the bars.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tenpo.core.errors import TenpoError
from tenpo.core.settings import Settings
from tenpo.pos.vendors import by_source as vendors_by_source
from tenpo.pos.vendors import master_sources
from tenpo.pos.vendors import routes as vendor_routes

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_SCOPES",
    "SOURCE_ROUTES",
    "compare_with_truth",
    "create_demo_users",
    "isolated_settings",
    "read_store_kpis",
    "read_truth",
    "register_chain",
    "send_files",
    "source_files",
]

log = logging.getLogger(__name__)

DEMO_SCOPES = ["pos:write", "iot:write", "video:write", "read"]
DEMO_PASSWORD = "tenpo-demo-password"

# Order matters: a POS master must be loaded before the sales that need it (the vendor
# registry lists masters first).
SOURCE_ROUTES = {
    **vendor_routes(),
    "iot": ("/v1/iot/events", "application/json"),
    "visitor_events": ("/v1/video/visitor-events", "application/x-ndjson"),
}

SourceFile = tuple[str, str, Path]
"""(source, tenant, path) of one simulated file."""


def require_empty_lake(lake_url: str, whose: str) -> None:
    """``BadInput`` unless the remote lake at ``lake_url`` holds no object yet (a run there
    wipes only local files, so old objects would mix into its tables)."""
    from tenpo.core.errors import BadInput
    from tenpo.lake import open_lake

    if open_lake(lake_url).list(""):
        raise BadInput(f"{whose} lake {lake_url} is not empty: name a fresh prefix")


def isolated_settings(base: Settings, root: Path, **overrides: Any) -> Settings:
    """``base`` with every store under ``root``: lake, control plane, datamart, SQLite bus."""
    update: dict[str, Any] = {
        "data_dir": root,
        "lake_url": None,
        "control_url": None,
        "datamart_url": None,
        "bus": "sqlite",
        "bus_url": None,
        "streamer_state_url": None,
        "bus_ack_wait_s": 10.0,
    }
    update.update(overrides)
    return base.model_copy(update=update)


def source_files(sim_dir: Path) -> list[SourceFile]:
    """(source, tenant, path) of every file the simulator wrote (its ``manifest.json``) that
    has a route, in sending order: by vendor (then device source), tenant, master before
    sales, path."""
    from tenpo.simulate.writers import Manifest

    manifest = Manifest.load(sim_dir)
    by_source = vendors_by_source()
    order = list(dict.fromkeys(
        [by_source[s][0].key if s in by_source else s for s in SOURCE_ROUTES]
    ))  # fmt: skip

    def group(source: str) -> str:
        return by_source[source][0].key if source in by_source else source

    found = [
        (e.source, e.tenant_id, manifest.path(e))
        for e in manifest.entries
        if e.source in SOURCE_ROUTES and e.tenant_id is not None
    ]
    found.sort(
        key=lambda f: (
            order.index(group(f[0])),
            f[1],
            f[0] not in master_sources(),
            f[2].as_posix(),
        )
    )
    return found


def register_chain(control: Any, chain: dict[str, Any]) -> dict[str, str]:
    """Create the simulated tenants, stores, devices and API keys; returns tenant → API key."""
    keys: dict[str, str] = {}
    for tenant in chain["tenants"]:
        control.create_tenant(tenant["id"], tenant["name"])
        _, token = control.create_api_key(tenant["id"], "demo", DEMO_SCOPES)
        keys[tenant["id"]] = token
    store_ids: dict[tuple[str, str], str] = {}
    for s in chain["stores"]:
        info = control.create_store(
            s["tenant_id"],
            s["code"],
            s["name"],
            timezone=s.get("timezone", "Asia/Tokyo"),
            industry=s.get("industry"),
            region=s.get("region"),
            floor_area_m2=s.get("floor_area_m2"),
            opening_hours=s.get("opening_hours"),
        )
        store_ids[(s["tenant_id"], s["code"])] = info.store_id
    for d in chain["devices"]:
        control.create_device(
            d["tenant_id"],
            d["device_id"],
            store_ids[(d["tenant_id"], d["store_code"])],
            d["kind"],
            lines=tuple(d.get("lines") or ()),
            zones=tuple(d.get("zones") or ()),
        )
    for i in chain.get("initiatives", []):
        # The simulator's planted initiatives, as a chain would register its own measures.
        control.ensure_initiative(
            i["tenant_id"],
            initiative_id=i["initiative_id"],
            name=i["name"],
            kind=i["kind"],
            kpi=i["kpi"],
            store_ids=[store_ids[(i["tenant_id"], c)] for c in i["store_codes"]],
            start=date.fromisoformat(i["start"]),
            end=date.fromisoformat(i["end"]),
            description=i.get("description", ""),
        )
    return keys


def create_demo_users(control: Any, chain: dict[str, Any]) -> dict[str, str]:
    """A tenant_admin dashboard user per simulated tenant; returns tenant → login email."""
    logins: dict[str, str] = {}
    for tenant in chain["tenants"]:
        email = f"demo@{tenant['id']}.example.com"
        control.create_user(tenant["id"], email, DEMO_PASSWORD, "tenant_admin")
        logins[tenant["id"]] = email
    return logins


SEND_ATTEMPTS = 6
"""Tries per file of :func:`send_files` (pauses of 0.25 s doubling up to 8 s between them)."""


def send_files(
    base_url: str,
    keys: dict[str, str],
    files: Sequence[SourceFile],
    *,
    on_file: Callable[[int], None] | None = None,
    workers: int = 1,
) -> int:
    """POST every file to the gateway; returns the bytes sent.

    ``workers`` > 1 sends that many files at once (order across files is then not kept: only
    for files that do not depend on each other). ``on_file(nbytes)`` after each accepted file;
    a non-202 answer raises :class:`TenpoError` with the problem text. A dropped connection
    or a 503 is re-sent (:data:`SEND_ATTEMPTS` tries), which the gateway's content-addressed
    object ids make harmless.
    """
    limits = httpx.Limits(max_connections=max(1, workers), max_keepalive_connections=workers)
    with httpx.Client(base_url=base_url, timeout=120, limits=limits) as client:

        def send(item: SourceFile) -> int:
            source, tenant, path = item
            route, content_type = SOURCE_ROUTES[source]
            body = path.read_bytes()
            headers = {"Authorization": f"Bearer {keys[tenant]}", "Content-Type": content_type}
            for attempt in range(SEND_ATTEMPTS):
                # A re-send is harmless (the object id is the content's hash): a dropped
                # connection (a keep-alive closed as the request went out, on a loaded
                # machine) or a busy gateway (503) is tried again after a pause.
                try:
                    resp = client.post(route, content=body, headers=headers)
                except httpx.TransportError as exc:
                    if attempt == SEND_ATTEMPTS - 1:
                        raise TenpoError(f"gateway unreachable for {path.name}: {exc!r}") from exc
                    log.warning("re-sending %s after %r", path.name, exc)
                else:
                    if resp.status_code != 503 or attempt == SEND_ATTEMPTS - 1:
                        break
                    log.warning("re-sending %s after 503 %s", path.name, resp.text[:200])
                time.sleep(min(8.0, 0.25 * 2**attempt))
            if resp.status_code != 202:
                raise TenpoError(f"gateway refused {path.name}: {resp.status_code} {resp.text}")
            if on_file is not None:
                on_file(len(body))
            return len(body)

        if workers <= 1:
            return sum(send(f) for f in files)
        with ThreadPoolExecutor(workers, thread_name_prefix="send") as pool:
            return sum(pool.map(send, files))


def read_initiative_effects(
    api_url: str, keys: dict[str, str], tenants: Iterable[str]
) -> list[dict[str, Any]]:
    """Every tenant's initiatives with the measured effect on the KPI each aims at, read
    through ``GET /v1/initiatives`` and ``GET /v1/initiatives/{id}/effect``."""
    out: list[dict[str, Any]] = []
    with httpx.Client(base_url=api_url, timeout=120) as client:
        for tenant in tenants:
            auth = {"Authorization": f"Bearer {keys[tenant]}"}
            for item in _get(client, "/v1/initiatives", auth, {})["items"]:
                effect = _get(client, f"/v1/initiatives/{item['initiative_id']}/effect", auth, {})
                aimed = next((e for e in effect["items"] if e["kpi"] == item["kpi"]), None)
                out.append({"tenant_id": tenant, **item, "effect": aimed})
    return out


def read_store_kpis(
    api_url: str,
    keys: dict[str, str],
    tenants: Iterable[str],
    first: date,
    last: date,
    *,
    on_page: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Every store's daily KPI rows of [first, last] read through the API, tagged with
    ``tenant_id`` and ``store_code``.

    Reads ``GET /v1/kpis`` (every store the key sees, 200 stores a page), so a chain of any
    size costs a few requests per tenant and stays under the key's rate limit; a 429 is
    retried after its ``Retry-After``. ``on_page(stores)`` after each page.
    """
    out: list[dict[str, Any]] = []
    with httpx.Client(base_url=api_url, timeout=120) as client:
        for tenant in tenants:
            auth = {"Authorization": f"Bearer {keys[tenant]}"}
            offset = 0
            while True:
                params: dict[str, Any] = {
                    "from": first.isoformat(),
                    "to": last.isoformat(),
                    "limit": _PAGE,
                    "offset": offset,
                }
                page = _get(client, "/v1/kpis", auth, params)
                stores = page["stores"]
                for store in stores:
                    for row in store["items"]:
                        row.update(tenant_id=tenant, store_code=store["code"])
                        out.append(row)
                if on_page is not None:
                    on_page(len(stores))
                offset += len(stores)
                if not stores or offset >= int(page["total"]):
                    break
    return out


_PAGE = 200


def _get(
    client: httpx.Client, path: str, headers: dict[str, str], params: dict[str, Any]
) -> dict[str, Any]:
    for _ in range(20):
        resp = client.get(path, headers=headers, params=params)
        if resp.status_code == 429:
            time.sleep(min(10.0, float(resp.headers.get("retry-after") or 1)))
            continue
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body
    raise TenpoError(f"GET {path}: still rate-limited after 20 tries")


def read_truth(sim_dir: Path) -> dict[tuple[str, str, date], dict[str, str]]:
    """The simulator's ground truth, keyed by (tenant, store code, business date)."""
    with (sim_dir / "truth" / "daily_kpis.csv").open(newline="", encoding="utf-8") as fh:
        return {
            (r["tenant_id"], r["store_code"], date.fromisoformat(r["business_date"])): r
            for r in csv.DictReader(fh)
        }


def _optional(row: Mapping[str, Any], name: str, kind: Callable[[Any], Any]) -> Any:
    """``row[name]`` as ``kind``; None when absent or empty (the truth's CSV writes null so)."""
    value = row.get(name)
    return None if value is None or value == "" else kind(value)


def compare_with_truth(
    rows: list[dict[str, Any]], truth: dict[tuple[str, str, date], dict[str, str]]
) -> list[str]:
    """Differences between the API's daily KPIs and the ground truth (empty when equal): sales,
    transactions, visitors and, where the truth has them (camera stores), the PersonID KPIs."""
    problems: list[str] = []
    seen: set[tuple[str, str, date]] = set()
    for r in rows:
        key = (r["tenant_id"], r["store_code"], date.fromisoformat(r["business_date"]))
        seen.add(key)
        t = truth.get(key)
        if t is None:
            problems.append(f"{key}: in the API but not in the truth")
            continue
        checks = {
            "net_sales": (Decimal(str(r["net_sales"])), Decimal(t["net_sales"])),
            "transactions": (int(r["transactions"] or 0), int(t["transactions"])),
            "visitors": (int(r["visitors"] or 0), int(t["visitors"])),
            "unique_visitors": (r.get("unique_visitors"), _optional(t, "unique_visitors", int)),
            "repeat_visitors": (r.get("repeat_visitors"), _optional(t, "repeat_visitors", int)),
            "dwell_time_median_s": (
                _optional(r, "dwell_time_median_s", lambda v: Decimal(str(v))),
                _optional(t, "median_dwell_s", Decimal),
            ),
        }
        for name, (got, want) in checks.items():
            if got != want:
                problems.append(f"{key} {name}: API {got} != truth {want}")
    for key, t in truth.items():
        active = int(t["transactions"]) != 0 or int(t["visitors"]) != 0
        if key not in seen and active:
            problems.append(f"{key}: in the truth but missing from the API")
    return problems
