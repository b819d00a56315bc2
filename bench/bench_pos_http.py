"""POS gateway over HTTP: small vendor B receipts, one per request (``pos_http``).

Starts the real ingest gateway (``tenpo.gateway.create_app``: API-key auth against the SQLite
control plane, body checks, store ownership, landing in the lake, the SQLite bus) in ONE
uvicorn worker in a subprocess, and posts distinct one-receipt vendor B bodies at a fixed
concurrency from an asyncio client (keep-alive connections). Reports requests/s and p50/p99
latency.

Baseline, measured in the same run on the same machine: a bare FastAPI app in the same kind
of worker whose endpoint reads the body and answers 202. The ratio is gateway/bare (< 1:
what authentication, checks, landing and publishing cost). Floor (issue 14): ratio ≥ 0.5 with
p99 < 50 ms. Client and server share the machine, so the client's own CPU use lowers both
figures alike. ``ROUNDS`` rounds of one run of each arm, the arms' order alternating from
round to round (gateway first, then bare first: what one arm leaves behind — the gateway's
write-back, a warmed cache — falls on each arm alike), with a short pause before each run.
Each arm is reported by its best run, and the ratio is best gateway / best bare: on a shared
machine a run is only ever slowed by the others' load, so each arm's best is its nearest to
what it can do, and the baseline is never a slow bare run that happened to be paired with a
fast gateway one (picking the best *pair* did that: its ratio was the luckiest of the
pairs). Every pair's ratio, every run's rate, p99 and server CPU time per request (which a
loaded machine disturbs least) are reported too. Every round posts receipts no earlier round
posted: the same bodies again are re-sends, which take the gateway's other path (the claim
found, the object compared in place), about twice the CPU of a new object.

The gateway's ingest path is async (issue 14): a cached key is checked on the event loop,
the upload's checks and unsynced writes run in the group committer's stager thread while
its syncer runs the round before, and the round is awaited on the loop, so no worker thread
is hopped to per request. A closed loop of 32 connections has mean latency 32 / throughput,
so on a shared, loaded machine the p99 figure mostly measures the load (the bare app's p99
is reported for comparison).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench._common import pos_writer, report

REQUESTS = int(os.environ.get("TENPO_BENCH_HTTP_REQUESTS", "3000"))
WARMUP = 200
ROUNDS = int(os.environ.get("TENPO_BENCH_ROUNDS", "5"))
SETTLE_S = 0.5
"""Pause before each run: the previous server's exit (its checkpoint, its write-back) settles."""
CONCURRENCY = 32
RATIO_TARGET = 0.5
"""Issue 14's floor: the gateway at ≥ 50 % of bare FastAPI's requests/s in the same run..."""
P99_TARGET_MS = 50
"""...with a p99 latency under 50 ms (both: ``target_met``)."""
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(kind: str, port: int) -> None:
    """Subprocess entry: run the gateway (``kind`` = gateway) or the bare app on ``port``."""
    import uvicorn

    logging.disable(logging.WARNING)
    if kind == "gateway":
        from tenpo.core.settings import Settings
        from tenpo.gateway import create_app, server_config

        settings = Settings()
        # As `tenpo serve gateway` runs it: tenpo's uvicorn config (its HTTP deadlines).
        config = server_config(
            create_app(settings),
            "127.0.0.1",
            port,
            settings=settings,
            log_level="warning",
            access_log=False,
        )
        uvicorn.Server(config).run()
        return
    app = FastAPI()  # bare: plain uvicorn, one endpoint reading the body

    @app.post("/v1/pos/{vendor}/sales", status_code=202)
    async def sales(vendor: str, request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"bytes": len(body)}, status_code=202)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _receipt(i: int) -> bytes:
    return json.dumps(
        {
            "storeCode": "S001",
            "registerId": "R1",
            "receiptId": f"B-{i:08d}",
            "transactedAt": "2026-11-02T10:15:00+09:00",
            "type": "SALE",
            "items": [
                {"sku": "4901234567894", "name": "お茶 500ml", "qty": 2, "unitPrice": "120.00",
                 "discount": "0", "taxRate": "8.000"}
            ],
            "subtotal": "240.00",
            "tax": "19",
            "total": "259",
        },
        ensure_ascii=False,
    ).encode()  # fmt: skip


async def _load(port: int, token: str, start: int, count: int) -> tuple[float, list[float]]:
    """Post ``count`` receipts over ``CONCURRENCY`` keep-alive connections.

    A minimal HTTP/1.1 client on asyncio streams: the async httpx client measured here spent
    ~15 ms of its own CPU per request (60 req/s against a bare app that serves 350 req/s to
    one blocking http.client connection), which would have measured the client.
    """
    latencies: list[float] = []
    queue = iter(range(start, start + count))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in queue:
                body = _receipt(i)
                head = (
                    f"POST /v1/pos/vendor_b/sales HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                t0 = time.perf_counter()
                writer.write(head + body)
                await writer.drain()
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if b" 202 " not in status_line:
                    raise RuntimeError(f"{status_line!r}: {answer[:300]!r}")
        finally:
            writer.close()
            await writer.wait_closed()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - began, latencies


def _wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start within 60 s")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(
    kind: str, env: dict[str, str], token: str, first: int = 0
) -> tuple[float, float, float, float]:
    """(requests/s, p50 ms, p99 ms, server CPU ms per request) of one server kind, posting
    receipts numbered from ``first`` on (warm-up included)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_pos_http", "serve", kind, str(port)],
        cwd=ROOT,
        env=env,
    )
    try:
        _wait_up(port, proc)
        asyncio.run(_load(port, token, first, WARMUP))
        cpu = _cpu_s(proc.pid)
        elapsed, latencies = asyncio.run(_load(port, token, first + WARMUP, REQUESTS))
        cpu = _cpu_s(proc.pid) - cpu
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return REQUESTS / elapsed, p50, p99, cpu / REQUESTS * 1000


def main() -> None:
    """Measure the gateway and the bare app; report ``pos_http`` (req/s, ratio vs bare)."""
    from tenpo.core.settings import Settings

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="tenpo-bench-http-") as tmp:
        env = {**os.environ, "TENPO_DATA_DIR": tmp, "PYTHONPATH": str(ROOT)}
        env.pop("TENPO_CONFIG", None)
        settings = Settings(data_dir=Path(tmp))
        token = pos_writer(settings)
        runs: dict[str, list[tuple[float, float, float, float]]] = {"gateway": [], "bare": []}
        for round_no in range(ROUNDS):
            # Each round posts receipts of its own: the same bodies again would be re-sends,
            # which take the gateway's other path (the object found in place, not created).
            first = round_no * (WARMUP + REQUESTS)
            for kind in ("gateway", "bare") if round_no % 2 == 0 else ("bare", "gateway"):
                time.sleep(SETTLE_S)
                runs[kind].append(_measure(kind, env, token, first))
        gateway_runs, bare_runs = runs["gateway"], runs["bare"]
        # Each arm's best run (see the module docstring); the gateway's p99 is its best run's.
        rate, p50, p99, cpu = max(gateway_runs)
        bare_rate, bare_p50, bare_p99, bare_cpu = max(bare_runs)
        pair_ratios = sorted(g[0] / b[0] for g, b in zip(gateway_runs, bare_runs, strict=True))
    report(
        "pos_http",
        rate,
        "req/s",
        bare_rate,
        RATIO_TARGET,
        concurrency=CONCURRENCY,
        requests=REQUESTS,
        p50_ms=round(p50, 2),
        p99_ms=round(p99, 2),
        bare_p50_ms=round(bare_p50, 2),
        bare_p99_ms=round(bare_p99, 2),
        cpu_ms_per_request=round(cpu, 3),
        bare_cpu_ms_per_request=round(bare_cpu, 3),
        best_cpu_ms_per_request=round(min(r[3] for r in gateway_runs), 3),
        ratios=[round(g[0] / b[0], 3) for g, b in zip(gateway_runs, bare_runs, strict=True)],
        median_pair_ratio=round(pair_ratios[len(pair_ratios) // 2], 3),
        gateway_p99_ms=[round(g[2], 1) for g in gateway_runs],
        gateway_rates=[round(g[0], 1) for g in gateway_runs],
        bare_rates=[round(b[0], 1) for b in bare_runs],
        gateway_cpu_ms_per_request=[round(g[3], 3) for g in gateway_runs],
        bare_cpu_ms_per_request_runs=[round(b[3], 3) for b in bare_runs],
        target_p99_ms=P99_TARGET_MS,
        target_met=rate >= RATIO_TARGET * bare_rate and p99 < P99_TARGET_MS,
        workers=1,
        rounds=ROUNDS,
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
