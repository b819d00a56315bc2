"""The README's "Command line" path, end to end, as an operator runs it (no demo helper).

Every step is a ``tenpo`` subprocess or an HTTP call on a fresh data dir: ``tenpo admin`` creates
the tenant, ``tenpo admin import`` registers two stores (Asia/Tokyo, and Europe/London, whose
clocks go back on 2026-10-25), their people counters and POS registers, ``tenpo admin key
create`` the keys; ``tenpo serve gateway`` takes a vendor A CSV (CP932), a vendor B JSON and
device events; ``tenpo streamer run --until-idle`` loads them, ``tenpo jobs materialize`` builds
every mart and export, ``tenpo serve api`` serves them. The figures read back are checked
against the hand computations in the comments, on a SQLite and on a PostgreSQL datamart.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

log = logging.getLogger(__name__)

TENPO = str(Path(sys.executable).parent / "tenpo")
TOKYO_HOURS = json.dumps({d: ["10:00", "20:00"] for d in
                          ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})  # fmt: skip

# -- the operator's files ----------------------------------------------------------------------


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


STORES_CSV = _csv(
    ["code", "name", "timezone", "industry", "region", "floor_area_m2", "opening_hours"],
    [
        ["S001", "本町店", "Asia/Tokyo", "apparel", "kanto", "120", TOKYO_HOURS],
        ["L001", "Soho", "Europe/London", "apparel", "uk", "80", ""],  # around the clock
    ],
)
DEVICES_CSV = _csv(
    ["device_id", "store_code", "kind", "lines", "zones", "config"],
    [
        ["pc-s001", "S001", "people_counter", "entrance", "", '{"interval_s": 3600}'],
        ["pc-l001", "L001", "people_counter", "entrance;passby", "", '{"interval_s": 3600}'],
    ],
)
REGISTERS_CSV = _csv(
    ["vendor", "register_code", "store_code", "valid_from", "valid_to"],
    [
        ["vendor_a", "0001", "S001", "2026-10-01", ""],
        ["vendor_a", "0002", "L001", "2026-10-01", ""],
    ],
)

_A_HEADER = (
    "レジ番号,レシート番号,取引日時,取引区分,行番号,JANコード,商品名,数量,単価,値引額,金額,"
    "税率区分,合計金額"
)
_TEA, _NOTE = "4901777000011,緑茶 525ml", "4902102000022,ノート Ａ５"
VENDOR_A_ROWS = [
    # S001 2026-10-24: a sale (tea 2×140 at 8 %, a note "1,280" at 10 %), its return, a void.
    f'0001,000101,2026/10/24 10:15:00,売上,1,{_TEA},2,140,,280,軽減,"1,560"',
    f'0001,000101,2026/10/24 10:15:00,売上,2,{_NOTE},1,"1,280",,"1,280",標準,"1,560"',
    f'0001,000102,2026/10/24 15:40:00,返品,1,{_NOTE},-1,"1,280",,"-1,280",標準,"-1,280"',
    f"0001,000103,2026/10/24 18:05:00,取消,1,{_TEA},1,140,,140,軽減,140",
    # S001 2026-10-25: tea 140 (8 %), two notes with 60 off (10 %).
    f'0001,000201,2026/10/25 11:00:00,売上,1,{_TEA},1,140,,140,軽減,"2,640"',
    f'0001,000201,2026/10/25 11:00:00,売上,2,{_NOTE},2,"1,280",60,"2,500",標準,"2,640"',
    # L001 2026-10-24 09:00 BST: tea 140 (8 %).
    f"0002,000301,2026/10/24 09:00:00,売上,1,{_TEA},1,140,,140,軽減,140",
    # L001 2026-10-25 01:30, no offset, in the repeated hour: the first 01:30 (BST).
    f'0002,000401,2026/10/25 01:30:00,売上,1,{_NOTE},1,"1,280",,"1,280",標準,"1,280"',
]
VENDOR_A = ("\r\n".join([_A_HEADER, *VENDOR_A_ROWS]) + "\r\n").encode("cp932")


def _b_receipt(
    store: str, rid: str, at: str, qty: int, unit: int, disc: int, rate: str
) -> dict[str, Any]:
    subtotal = qty * unit - disc
    tax = subtotal * int(rate) // 100
    return {
        "storeCode": store, "registerId": "R1", "receiptId": rid, "transactedAt": at,
        "type": "SALE", "subtotal": str(subtotal), "tax": str(tax), "total": str(subtotal + tax),
        "items": [{"sku": "4909999000017", "name": "シャツ", "qty": qty, "unitPrice": str(unit),
                   "discount": str(disc), "taxRate": rate}],
    }  # fmt: skip


VENDOR_B = {
    "receipts": [
        # S001 10-24: 3 × 500 − 100 = 1,400 excl., tax 140.
        _b_receipt("S001", "B-1", "2026-10-24T12:30:00+09:00", 3, 500, 100, "10"),
        # S001 10-26: 1,000 excl., tax 80.
        _b_receipt("S001", "B-2", "2026-10-26T19:59:00+09:00", 1, 1000, 0, "8"),
        # L001 10-25 00:10 BST (23:10 UTC on the 24th): 2 × 50 = 100, tax 8.
        _b_receipt("L001", "B-3", "2026-10-25T00:10:00+01:00", 2, 50, 0, "8"),
        # L001 10-25, the second 01:45 (GMT): 200, tax 20.
        _b_receipt("L001", "B-4", "2026-10-25T01:45:00+00:00", 1, 200, 0, "10"),
    ]
}

LONDON, TOKYO = "Europe/London", "Asia/Tokyo"


def _count(
    device: str, seq: int, start: datetime, line: str, n_in: int, n_out: int
) -> dict[str, Any]:
    end = start + timedelta(hours=1)
    return {"v": 1, "device_id": device, "seq": seq, "type": "count", "line": line,
            "interval_start": start.isoformat(), "interval_end": end.isoformat(),
            "in": n_in, "out": n_out}  # fmt: skip


def device_events() -> list[dict[str, Any]]:
    """The counters' events: hourly intervals with the gaps the health checks must find."""
    from zoneinfo import ZoneInfo

    events: list[dict[str, Any]] = []
    seq = iter(range(1, 10_000))
    tokyo = ZoneInfo(TOKYO)
    # pc-s001, open 10:00-20:00: all ten hours on the 24th (in 3,5,8,10,12,9,7,6,4,2 = 66);
    # 14:00 and 15:00 missing on the 25th (4,6,9,11,_,_,8,7,5,3 = 53); silent on the 26th.
    for day, ins in (
        (24, [3, 5, 8, 10, 12, 9, 7, 6, 4, 2]),
        (25, [4, 6, 9, 11, None, None, 8, 7, 5, 3]),
    ):
        for hour, n in zip(range(10, 20), ins, strict=True):
            if n is not None:
                start = datetime(2026, 10, day, hour, tzinfo=tokyo)
                events.append(_count("pc-s001", next(seq), start, "entrance", n, n))
    # pc-l001, around the clock, UTC hours (London is UTC+1 until 01:00 UTC on the 25th).
    # 24th: 24 local hours, 23:00 UTC on the 23rd .. 23:00 UTC on the 24th.
    first = datetime(2026, 10, 23, 23, tzinfo=UTC)
    for k in range(24):
        start = first + timedelta(hours=k)
        events.append(_count("pc-l001", next(seq), start, "entrance", 2, 0))
        events.append(_count("pc-l001", next(seq), start, "passby", 3, 4))
    # 25th: 25 local hours, 23:00 UTC on the 24th .. 00:00 UTC on the 26th; entrance in:
    # 00:00 BST 5, 01:00 BST 4, 01:00 GMT 6, then 1 per hour with 14:00 GMT missing.
    first = datetime(2026, 10, 24, 23, tzinfo=UTC)
    for k in range(25):
        start = first + timedelta(hours=k)
        if start.hour != 14:
            events.append(
                _count("pc-l001", next(seq), start, "entrance", {0: 5, 1: 4, 2: 6}.get(k, 1), 0)
            )
        events.append(_count("pc-l001", next(seq), start, "passby", 1, 1))
    # 26th: reports 00:00-11:00 GMT, then silent from noon.
    for hour in range(12):
        start = datetime(2026, 10, 26, hour, tzinfo=UTC)
        events.append(_count("pc-l001", next(seq), start, "entrance", 2, 0))
        events.append(_count("pc-l001", next(seq), start, "passby", 3, 4))
    # One heartbeat a day from pc-l001 (battery low on the 25th); none from pc-s001.
    for day, hour, battery in ((24, 11, 0.9), (25, 11, 0.15), (26, 11, 0.8)):
        events.append({"v": 1, "device_id": "pc-l001", "seq": next(seq), "type": "heartbeat",
                       "ts": datetime(2026, 10, day, hour, 30, tzinfo=UTC).isoformat(),
                       "status": "ok", "firmware": "2.4.1", "battery": battery})  # fmt: skip
    return events


# -- running tenpo -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    """Runs ``tenpo`` commands in one environment, as a shell would."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.servers: list[subprocess.Popen[str]] = []

    def run(self, *args: str, timeout: float = 240) -> str:
        t0 = time.perf_counter()
        done = subprocess.run(
            [TENPO, *args], env=self.env, cwd=self.cwd, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"tenpo {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        log.info("tenpo %s: %.1fs", " ".join(args[:3]), time.perf_counter() - t0)
        return done.stdout

    def serve(self, what: str, port: int) -> str:
        log = (self.cwd / f"serve-{what}.log").open("w")
        proc = subprocess.Popen(
            [TENPO, "serve", what, "--host", "127.0.0.1", "--port", str(port)],
            env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        log.close()
        self.servers.append(proc)
        return f"http://127.0.0.1:{port}"

    def wait_ready(self, proc: subprocess.Popen[str], url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                logs = "".join(p.read_text() for p in self.cwd.glob("serve-*.log"))
                pytest.fail(f"server at {url} exited with {proc.returncode}:\n{logs}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        pytest.fail(f"server at {url} did not answer within {timeout} s")

    @staticmethod
    def stop(proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=30) == 0, f"server exited with {proc.returncode}"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("server did not stop within 30 s of SIGTERM")

    def stop_all(self) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.servers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _token(output: str) -> str:
    """The token ``tenpo admin key create`` prints on its last line."""
    return output.strip().splitlines()[-1].strip()


@dataclass
class Ingested:
    """The data dir after the ingest half of the path: keys and the raw tables loaded."""

    op: Operator
    reader: str


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    """Register, ingest and stream once: the datamart backend plays no part up to here.

    ``tenpo admin`` (control plane), ``tenpo serve gateway`` (landing zone and bus) and
    ``tenpo streamer`` (raw tables) do not touch the datamart, so both backends' tests start
    from the same raw tables; each then runs ``tenpo jobs materialize`` and ``tenpo serve api``
    against its own, fresh datamart.
    """
    root = tmp_path_factory.mktemp("cli_path")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENPO_")}
    env |= {"TENPO_DATA_DIR": str(root / "data"), "TENPO_MQTT_ENABLED": "false",
            "COLUMNS": "200", "NO_COLOR": "1",
            # Three days of data: let the ML marts score stores with three open days.
            "TENPO_ML_MIN_OPEN_DAYS": "3"}  # fmt: skip
    op = Operator(env, root)
    try:
        yield Ingested(op, ingest(op))
    finally:
        op.stop_all()


def ingest(op: Operator) -> str:
    """The README's path up to the raw tables; returns the read key."""
    for name, text in (
        ("stores", STORES_CSV),
        ("devices", DEVICES_CSV),
        ("registers", REGISTERS_CSV),
    ):
        (op.cwd / f"{name}.csv").write_text(text, encoding="utf-8")
    op.run("admin", "tenant", "create", "acme", "--name", "Acme Retail")
    # The gateway is a long-running service: it starts (slowly) while the operator registers.
    t0 = time.perf_counter()
    gateway = op.serve("gateway", _free_port())
    out = op.run(
        "admin", "import", "stores.csv", "devices.csv", "registers.csv", "--tenant", "acme"
    )
    assert "created 2 stores, 2 devices, 2 registers" in " ".join(out.split()), out
    ingest = _token(op.run("admin", "key", "create", "--tenant", "acme", "--name", "ingest",
                           "--scope", "pos:write", "--scope", "iot:write"))  # fmt: skip
    reader = _token(op.run("admin", "key", "create", "--tenant", "acme", "--name", "reader",
                           "--scope", "read"))  # fmt: skip
    op.wait_ready(op.servers[-1], gateway)
    log.info("gateway serving after %.1fs", time.perf_counter() - t0)
    auth = {"Authorization": f"Bearer {ingest}"}
    with httpx.Client(base_url=gateway, headers=auth, timeout=30) as gw:
        for route, body, media in (
            ("/v1/pos/vendor_a/sales", VENDOR_A, "text/csv; charset=cp932"),
            ("/v1/pos/vendor_b/sales", json.dumps(VENDOR_B).encode(), "application/json"),
            (
                "/v1/iot/events",
                json.dumps({"events": device_events()}).encode(),
                "application/json",
            ),
        ):
            resp = gw.post(route, content=body, headers={"Content-Type": media})
            assert resp.status_code == 202, (route, resp.text)
    op.stop(op.servers.pop())
    out = " ".join(op.run("streamer", "run", "--until-idle", "--idle", "0.5").split())
    assert "loaded: 3 objects, 164 rows" in out and "0 rejects" in out, out
    return reader


# -- the expected figures ----------------------------------------------------------------------
# Vendor A tax (FORMATS.md): per receipt and rate, tax = floor(|S| × r / (1 + r)).
#   000101: 8 % S=280 → 20 (excl 260); 10 % S=1,280 → 116 (excl 1,164). 000102: −1,164 excl.
#   000201: 8 % 140 → 10 (130); 10 % 2,500 → 227 (2,273). 000301: 130. 000401: 1,164.
DAILY_FIELDS = ("transactions", "units", "net_sales", "net_sales_incl_tax", "visitors",
                "passersby", "flags")  # fmt: skip
DAILY = {
    # store, date: transactions, units, net excl., net incl., visitors, passers-by, flags
    ("S001", "2026-10-24"): (1, 5, "1660.00", "1820.00", 66, None, []),  # A 260/280 + B 1,400/1,540
    ("S001", "2026-10-25"): (1, 3, "2403.00", "2640.00", 53, None, ["counter_incomplete"]),
    ("S001", "2026-10-26"): (
        1,
        1,
        "1000.00",
        "1080.00",
        None,
        None,
        ["counter_missing", "counter_incomplete"],
    ),  # fmt: skip
    ("L001", "2026-10-24"): (1, 1, "130.00", "140.00", 48, 168, []),
    # A 1,164/1,280 + B 100/108 + B 200/220; entrance 5+4+6+21×1; passby 25 × 2.
    ("L001", "2026-10-25"): (3, 4, "1464.00", "1608.00", 36, 50, ["counter_incomplete"]),
    ("L001", "2026-10-26"): (None, None, None, None, 24, 84, ["pos_missing", "counter_incomplete"]),
}
DEVICE_FLAGS = {
    ("S001", "2026-10-24"): ["no_heartbeat"],
    ("S001", "2026-10-25"): ["missing_intervals", "no_heartbeat"],
    ("S001", "2026-10-26"): ["missing_intervals", "no_data", "no_heartbeat"],
    ("L001", "2026-10-24"): ["delivered_late"],
    ("L001", "2026-10-25"): ["delivered_late", "low_battery", "missing_intervals"],
    ("L001", "2026-10-26"): ["delivered_late", "missing_intervals"],
}
HEALTH = {
    # device, date: expected, received, missing, incomplete hours, heartbeats, flags
    ("pc-s001", "2026-10-24"): (10, 10, 0, [], 0),
    ("pc-s001", "2026-10-25"): (10, 8, 2, ["14:00+09:00", "15:00+09:00"], 0),
    ("pc-s001", "2026-10-26"): (10, 0, 10, [f"{h}:00+09:00" for h in range(10, 20)], 0),
    ("pc-l001", "2026-10-24"): (48, 48, 0, [], 1),  # 24 h × 2 lines
    ("pc-l001", "2026-10-25"): (50, 49, 1, ["14:00+00:00"], 1),  # 25 h × 2 lines
    ("pc-l001", "2026-10-26"): (48, 24, 24, [f"{h}:00+00:00" for h in range(12, 24)], 1),
}


def _london_fall_back_hours() -> list[tuple[Any, ...]]:
    """(hour, utc_offset_s, transactions, net_sales, visitors, passersby, flags) of L001 on
    2026-10-25: 25 rows, 01:00 twice (BST then GMT)."""
    rows: list[tuple[Any, ...]] = [
        (0, 3600, 1, "100.00", 5, 2, []),
        (1, 3600, 1, "1164.00", 4, 2, []),  # vendor A's 01:30 without offset: the first one
        (1, 0, 1, "200.00", 6, 2, []),
    ]
    for hour in range(2, 24):
        if hour == 14:  # the entrance slot is missing: 0 entries counted, the hour incomplete
            rows.append((hour, 0, None, None, 0, 2, ["pos_missing", "counter_incomplete"]))
        else:
            rows.append((hour, 0, None, None, 1, 2, ["pos_missing"]))
    return rows


def check_targets(body: dict[str, Any], ids: dict[str, str]) -> None:
    """S001's targets over the three days, against its one peer L001 (group basis).

    S001: net 1,660 + 2,403 + 1,000 = 5,063 in 3 receipts (9 units); conversion on the days
    with both sources 2 / (66 + 53). L001: 1,594 in 4 receipts (5 units); 4 / (48 + 36).
    Peer quantiles interpolate linearly between the two stores.
    """
    s_atv, l_atv = 5063 / 3, 1594 / 4
    s_conv, l_conv = 2 / 119, 4 / 84
    s_upt, l_upt = 9 / 3, 5 / 4

    def q(lo: float, hi: float, p: float) -> float:
        return lo + p * (hi - lo)

    assert body["store_id"] == ids["S001"] and body["as_of"] == "2026-10-26"
    assert body["cluster"]["cluster_id"] == "acme/apparel#0" and body["cluster"]["k"] == 1
    assert body["primary_lever"] == "conversion_rate"
    items = {t["kpi"]: t for t in body["items"]}
    assert sorted(items) == ["atv", "conversion_rate", "net_sales", "upt"]
    for kpi, actual, (lo, hi) in (
        ("atv", s_atv, (l_atv, s_atv)),
        ("conversion_rate", s_conv, (s_conv, l_conv)),
        ("upt", s_upt, (l_upt, s_upt)),
    ):
        t = items[kpi]
        assert (t["peer_basis"], t["peers_n"], t["quantile"]) == ("group", 2, 0.75)
        assert t["actual"] == pytest.approx(actual)
        assert (t["peer_p25"], t["peer_median"], t["peer_target"]) == pytest.approx(
            (q(lo, hi, 0.25), q(lo, hi, 0.5), q(lo, hi, 0.75))
        )
        assert t["target"] == pytest.approx(max(actual, q(lo, hi, 0.75)))
        assert t["peers"] == {"stores": [ids["L001"]], "other_tenants_stores": 0, "n": 2}
    # Conversion to its P75: ¥5,063/3 per day × (P75 / actual − 1), to the yen.
    uplift = s_atv * (q(s_conv, l_conv, 0.75) / s_conv - 1)
    assert items["conversion_rate"]["uplift_per_day"] == f"{round(uplift)}.00" == "2321.00"
    assert items["atv"]["uplift_per_day"] == items["upt"]["uplift_per_day"] == "0.00"
    assert items["net_sales"]["actual"] == pytest.approx(s_atv)  # ¥5,063 over 3 days


@pytest.mark.parametrize("datamart", ["sqlite", "postgresql"])
def test_readme_command_line_path(
    ingested: Ingested, datamart: str, request: pytest.FixtureRequest
) -> None:
    op, reader = ingested.op, ingested.reader
    started = time.perf_counter()
    if datamart == "postgresql":  # a fresh database, dropped afterwards
        op.env["TENPO_DATAMART_URL"] = request.getfixturevalue("pg_url")
    else:
        op.env["TENPO_DATAMART_URL"] = f"sqlite:///{op.cwd / 'datamart.db'}"
    op.run("jobs", "materialize", "--from", "2026-10-24", "--to", "2026-10-26")
    t0 = time.perf_counter()
    api = op.serve("api", _free_port())
    op.wait_ready(op.servers[-1], api)
    log.info("API serving after %.1fs", time.perf_counter() - t0)
    t0 = time.perf_counter()

    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {reader}"}, timeout=30) as c:
        stores = c.get("/v1/stores").json()
        by_code = {s["code"]: s for s in stores["items"]}
        assert sorted(by_code) == ["L001", "S001"], stores
        assert (by_code["L001"]["timezone"], by_code["S001"]["timezone"]) == (LONDON, TOKYO)
        assert by_code["S001"]["name"] == "本町店"
        ids = {code: s["store_id"] for code, s in by_code.items()}

        got_daily: dict[tuple[str, str], tuple[Any, ...]] = {}
        got_flags: dict[tuple[str, str], list[str]] = {}
        for code, sid in ids.items():
            resp = c.get(
                f"/v1/stores/{sid}/kpis", params={"from": "2026-10-24", "to": "2026-10-26"}
            )
            assert resp.status_code == 200, resp.text
            for r in resp.json()["items"]:
                key = (code, r["business_date"])
                got_daily[key] = tuple(r[k] for k in DAILY_FIELDS)
                got_flags[key] = r["device_flags"]
        assert got_daily == DAILY
        assert got_flags == DEVICE_FLAGS

        day = {"from": "2026-10-25", "to": "2026-10-25", "grain": "hour"}
        resp = c.get(f"/v1/stores/{ids['L001']}/kpis", params=day)
        assert resp.status_code == 200, resp.text
        hours = [(r["hour"], r["utc_offset_s"], r["transactions"], r["net_sales"], r["visitors"],
                  r["passersby"], r["flags"]) for r in resp.json()["items"]]  # fmt: skip
        assert hours == _london_fall_back_hours()

        got_health: dict[tuple[str, str], tuple[Any, ...]] = {}
        health_flags: dict[tuple[str, str], list[str]] = {}
        for day in ("2026-10-24", "2026-10-25", "2026-10-26"):
            body = c.get("/v1/devices/health", params={"date": day}).json()
            assert body["date"] == day
            for item in body["items"]:
                key = (item["device_id"], day)
                got_health[key] = (item["intervals_expected"], item["intervals_received"],
                                   item["intervals_missing"], item["incomplete_hours"],
                                   item["heartbeats"])  # fmt: skip
                health_flags[key] = item["flags"]
                assert item["interval_s"] == 3600
        assert got_health == HEALTH
        assert health_flags[("pc-s001", "2026-10-26")] == [
            "missing_intervals",
            "no_data",
            "no_heartbeat",
        ]
        assert health_flags[("pc-l001", "2026-10-25")] == [
            "delivered_late",
            "low_battery",
            "missing_intervals",
        ]

        targets = c.get(f"/v1/stores/{ids['S001']}/targets")
        assert targets.status_code == 200, targets.text
        check_targets(targets.json(), ids)
        bench = c.get("/v1/benchmarks")
        assert bench.status_code == 200, bench.text
        body = bench.json()
        # Two stores of one tenant: every cell is below the anonymity threshold.
        assert body["period"] == "2026-W44" and body["items"], body
        for item in body["items"]:
            assert item["industry"] == "apparel" and item["published"] is False, item
            assert (item["stores_band"], item["p25"], item["median"], item["p75"]) == (None,) * 4
            assert item["period_end"] == "2026-10-26"
    log.info("reads %.1fs", time.perf_counter() - t0)
    op.stop(op.servers.pop())
    log.info("materialize, API and reads on %s: %.1fs", datamart, time.perf_counter() - started)
