"""A reject-only POS body: quarantine size and the cost of its batch-status read (``pos_rejects``).

Lands a ~3 MB vendor A CSV whose every receipt is rejected (its register has no POS master
yet: the common reject-only upload, every reject replayable) through the real gateway app,
loads it with the streamer, then reads ``GET /v1/pos/batches/{object_id}`` (first page).
Reports the status read's latency; the baseline, measured in the same run, is the same read
for a small batch with two rejects, so the ratio says how much a huge reject-only batch costs
more than a tiny one (1.0 = nothing). Also reports the quarantine bytes per body byte and the
read's peak Python memory (tracemalloc). Issue 11 measured 590 MB of quarantine, 12.5 s and
+670 MB for such a body.
"""

from __future__ import annotations

import logging
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench._common import report

BODY_BYTES = 3_000_000
HEADER = ",".join(
    ["レジ番号", "レシート番号", "取引日時", "取引区分", "行番号", "JANコード", "商品名"]
    + ["数量", "単価", "値引額", "金額", "税率区分", "合計金額"]
)
RATIO_TARGET = 0.2
"""Our bar: the huge batch's status read at most 5x the cost of a tiny one."""


def _body(target: int) -> bytes:
    rows, size, i = [], 0, 0
    while size < target:
        i += 1
        line = (i - 1) % 3 + 1
        row = (
            f"0001,{(i + 2) // 3},2026/10/05 10:00:00,売上,{line},49000001,お茶,1,100,,100,標準,300"
        )
        rows.append(row)
        size += len(row) + 2
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp932")


def _read(client: object, url: str, token: str) -> tuple[float, float, dict[str, object]]:
    tracemalloc.start()
    started = time.perf_counter()
    resp = client.get(url, headers={"Authorization": f"Bearer {token}"})  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if resp.status_code != 200:
        raise RuntimeError(resp.text)
    return elapsed, peak / 1e6, resp.json()


def main() -> None:
    """Measure the reject-only batch against a tiny one; report ``pos_rejects``."""
    from fastapi.testclient import TestClient

    from tenpo.bus import open_bus
    from tenpo.control import ControlPlane
    from tenpo.core.settings import Settings
    from tenpo.gateway import create_app
    from tenpo.lake import open_lake
    from tenpo.streamer import Streamer

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        control = ControlPlane.open(settings.control_db_url)
        control.create_tenant("acme", "Acme")
        control.create_store("acme", "T01", "本町店")
        _, token = control.create_api_key("acme", "pos", ["pos:write"])
        lake, bus = open_lake(settings.lake_root), open_bus(settings)
        app = create_app(settings, control=control, lake=lake, bus=bus)
        big, small = _body(BODY_BYTES), _body(100)
        with TestClient(app) as client:
            ids = []
            for body in (big, small):
                resp = client.post(
                    "/v1/pos/vendor_a/sales",
                    content=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
                ids.append(resp.json()["object_id"])
            streamer = Streamer(settings, lake, bus, control.directory(), fetch_timeout=0.05)
            streamer.run_until_idle(0.2)
            streamer.close()
            quarantine = sum(len(lake.get(k)) for k in lake.list("quarantine/"))
            runs = []
            for _ in range(3):
                base, _, _ = _read(client, f"/v1/pos/batches/{ids[1]}", token)
                value, peak, status = _read(client, f"/v1/pos/batches/{ids[0]}", token)
                runs.append((value, base, peak))
        bus.close()
        control.dispose()
    value, base, peak = min(runs)
    report(
        "pos_rejects",
        value * 1000,
        "ms",
        base * 1000,
        RATIO_TARGET,
        higher_is_better=False,
        body_bytes=len(big),
        quarantine_bytes=quarantine,
        quarantine_per_body_byte=round(quarantine / len(big), 2),
        read_peak_mb=round(peak, 1),
        quarantined=status["quarantined"],
    )
    print(
        f"  body {len(big):,} B -> quarantine {quarantine:,} B; status read peak {peak:.1f} MB,"
        f" {status['quarantined']:,} rejects"
    )


if __name__ == "__main__":
    main()
