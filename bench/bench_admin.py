"""Bulk registration: 1,000 stores with 2 devices each (a counter and a ToF camera) and a POS
register, into a fresh SQLite control plane, three ways in the same run:

* ``tenpo admin import stores.csv devices.csv registers.csv`` as a subprocess (what an
  operator runs; includes interpreter start-up and CSV parsing);
* ``POST /v1/admin/import`` with the same rows as JSON, through the real app over HTTP
  (uvicorn on loopback);
* the baseline: the same rows created one by one through ``ControlPlane.create_*`` in process
  (what scripting the single ``tenpo admin ... create`` commands costs at best, without the
  ~1 s interpreter start-up each of those pays).

Reports ``admin_bulk_http`` (rows/s of the HTTP import; baseline rows/s one by one; target
ratio 10) and ``admin_bulk_cli`` (seconds for the whole CLI import; target: under 10 s for
the 1,000 stores with their devices). Best of ``TENPO_BENCH_RUNS`` (default 3) runs.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import report  # noqa: E402

STORES = 1000
RUNS = int(os.environ.get("TENPO_BENCH_RUNS", "3"))


def rows() -> dict[str, list[dict[str, Any]]]:
    """The registration: stores, two devices per store, one register per store."""
    stores = [
        {"code": f"S{i:04d}", "name": f"店舗 {i}", "timezone": "Asia/Tokyo",
         "industry": "cafe" if i % 2 else "apparel", "region": "kanto",
         "floor_area_m2": str(80 + i % 200)}
        for i in range(STORES)
    ]  # fmt: skip
    devices = []
    for i in range(STORES):
        devices.append({"device_id": f"pc-{i:04d}", "store_code": f"S{i:04d}",
                        "kind": "people_counter", "lines": "entrance;passby"})  # fmt: skip
        devices.append({"device_id": f"tof-{i:04d}", "store_code": f"S{i:04d}",
                        "kind": "tof_camera", "zones": "floor;checkout"})  # fmt: skip
    registers = [
        {"vendor": "vendor_a", "register_code": f"{i:04d}", "store_code": f"S{i:04d}",
         "valid_from": "2026-01-01"}
        for i in range(STORES)
    ]  # fmt: skip
    return {"stores": stores, "devices": devices, "registers": registers}


def _write_csv(path: Path, items: list[dict[str, Any]]) -> None:
    names = sorted({k for item in items for k in item})
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        writer.writerows(items)


def _fresh(folder: Path) -> Any:
    from tenpo.control import ControlPlane

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    control = ControlPlane.open(f"sqlite:///{folder / 'control.db'}")
    control.create_tenant("acme", "Acme")
    return control


def one_by_one(folder: Path, data: dict[str, list[dict[str, Any]]]) -> float:
    """Seconds to create every row with the single-row service calls."""
    from datetime import date

    control = _fresh(folder)
    start = time.perf_counter()
    ids = {}
    for s in data["stores"]:
        info = control.create_store("acme", s["code"], s["name"], timezone=s["timezone"],
                                    industry=s["industry"], region=s["region"],
                                    floor_area_m2=s["floor_area_m2"])  # fmt: skip
        ids[s["code"]] = info.store_id
    for d in data["devices"]:
        lines = d["lines"].split(";") if "lines" in d else ()
        zones = d["zones"].split(";") if "zones" in d else ()
        control.create_device(
            "acme", d["device_id"], ids[d["store_code"]], d["kind"], lines=lines, zones=zones
        )
    for r in data["registers"]:
        control.create_register("acme", r["vendor"], r["register_code"], ids[r["store_code"]],
                                date.fromisoformat(r["valid_from"]))  # fmt: skip
    elapsed = time.perf_counter() - start
    control.dispose()
    return elapsed


def over_http(folder: Path, data: dict[str, list[dict[str, Any]]]) -> float:
    """Seconds for ``POST /v1/admin/import`` of every row (server already up)."""
    import httpx

    from tenpo.api import create_app
    from tenpo.core.settings import Settings
    from tenpo.gateway import serve_in_thread

    control = _fresh(folder)
    _, token = control.create_api_key("acme", "admin", ["admin"])
    settings = Settings(data_dir=folder, api_rate_per_s=0)
    server, thread = serve_in_thread(create_app(settings, control=control), "127.0.0.1", 0)
    port = next(s.getsockname()[1] for srv in server.servers for s in srv.sockets)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            start = time.perf_counter()
            resp = client.post(
                "/v1/admin/import", json=data, headers={"Authorization": f"Bearer {token}"}
            )
            elapsed = time.perf_counter() - start
        resp.raise_for_status()
        assert resp.json()["created"] == {"stores": STORES, "devices": 2 * STORES,
                                          "registers": STORES}, resp.text  # fmt: skip
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        control.dispose()
    return elapsed


def with_cli(folder: Path, data: dict[str, list[dict[str, Any]]]) -> float:
    """Seconds for the whole ``tenpo admin import`` subprocess."""
    control = _fresh(folder)
    control.dispose()
    files = []
    for kind, items in data.items():
        path = folder / f"{kind}.csv"
        _write_csv(path, items)
        files.append(str(path))
    env = {**os.environ, "TENPO_DATA_DIR": str(folder), "TENPO_LOG_LEVEL": "WARNING"}
    tenpo = str(Path(sys.executable).with_name("tenpo"))
    cmd = [tenpo, "admin", "import", *files, "--tenant", "acme"]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    """Run the three ways ``RUNS`` times and report the best of each."""
    data = rows()
    total = sum(len(v) for v in data.values())
    root = Path(tempfile.mkdtemp(prefix="tenpo-bench-admin-"))
    try:
        base = min(one_by_one(root / "single", data) for _ in range(RUNS))
        http = min(over_http(root / "http", data) for _ in range(RUNS))
        cli = min(with_cli(root / "cli", data) for _ in range(RUNS))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report("admin_bulk_http", total / http, "rows/s", total / base, 10.0,
           rows=total, stores=STORES, seconds=round(http, 3),
           one_by_one_seconds=round(base, 3))  # fmt: skip
    report("admin_bulk_cli", cli, "s", 10.0, 1.0, higher_is_better=False,
           rows=total, stores=STORES)  # fmt: skip


if __name__ == "__main__":
    main()
