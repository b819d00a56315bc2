"""`tenpo streamer run` over the real embedded stack: SQLite bus, control plane, POS Pre-ETL."""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenpo.bus import open_bus
from tenpo.cli import app
from tenpo.control.directory import StaticDirectory
from tenpo.core.settings import Settings
from tenpo.lake import LandingZone, open_lake
from tenpo.streamer import Streamer, read_table, stop_on_signals
from tests.streamer._fakes import TABLE, JsonPreEtl, body

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tenpo.bus.sqlite") is None,
    reason="tenpo.bus.sqlite.SqliteBus (the embedded bus) is not in the tree yet",
)

SAMPLE = Path(__file__).parents[1] / "data" / "vendor_b_sales.json"


def test_cli_run_until_idle_loads_vendor_b_and_quarantines_unknown(settings: Settings) -> None:
    from tenpo.control import ControlPlane

    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("t1", "Tenant One")
    store = control.create_store("t1", "T01", "Store T01")
    control.dispose()
    data = (
        SAMPLE.read_bytes()
        if SAMPLE.exists()
        else (
            b'{"receipts": [{"storeCode": "T01", "registerId": "POS-2", "receiptId": "R-000001",'
            b' "transactedAt": "2026-10-05T12:01:09+09:00", "type": "SALE", "items": [{"sku":'
            b' "4901777000011", "name": "tea", "qty": 2, "unitPrice": "129.63", "discount": "0",'
            b' "taxRate": "8.000"}], "subtotal": "259.26", "tax": "20", "total": "279.26"}]}'
        )
    )
    lake = open_lake(settings.lake_root)
    bus = open_bus(settings)
    landing = LandingZone(lake, bus)
    landing.land("pos_vendor_b", "t1", data, "json")
    odd = landing.land("no_such_source", "t1", b"?", "bin")
    bus.close()

    out = CliRunner().invoke(app, ["streamer", "run", "--until-idle", "--idle", "0.3"])

    assert out.exit_code == 0, out.output
    assert "loaded: 2 objects" in out.output
    txns = read_table(lake, "raw_pos_transactions", "t1")
    assert txns["transaction_id"].to_pylist() == ["POS-2-R-000001"]
    assert txns["store_id"].to_pylist() == [store.store_id]
    assert str(txns["total_incl_tax"][0].as_py()) == "279.26"
    assert read_table(lake, "raw_pos_lines", "t1").num_rows == 1
    [key] = lake.list("quarantine/_objects/")
    assert key.endswith(f"/{odd.event.object_id}.jsonl")


def test_run_forever_stops_gracefully_on_sigterm(settings: Settings) -> None:
    cfg = settings.model_copy(update={"bus_ack_wait_s": 1.0})
    lake = open_lake(cfg.lake_root)
    bus = open_bus(cfg)
    LandingZone(lake, bus).land("test_json", "t1", body(("S1", "A", "2026-10-05", "1")), "json")
    streamer = Streamer(cfg, lake, bus, StaticDirectory(), {"test_json": JsonPreEtl()})

    def after_first_batch(stats: object) -> None:
        # Like `kill -TERM <pid>`: the handler runs in the main thread, mid-loop.
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()

    previous = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        total = streamer.run_forever(stop, on_batch=after_first_batch)
    assert signal.getsignal(signal.SIGTERM) is previous
    assert total.objects == 1
    assert read_table(lake, TABLE)["transaction_id"].to_pylist() == ["A"]
    streamer.close()
    bus.close()


def test_cli_recover_deletes_dead_owners_parts_and_all_with_all_owners(settings: Settings) -> None:
    from tenpo.streamer import LoadLedger

    lake = open_lake(settings.lake_root)
    ledger = LoadLedger(settings.streamer_db_url)
    live, dead = "tables/x/tenant=t1/date=2026-10-05/live.parquet", "tables/x/d/dead.parquet"
    ledger.heartbeat("elsewhere:1:live")  # another host's streamer with a fresh lease
    ledger.begin_parts([live], "elsewhere:1:live")
    ledger.begin_parts([dead], "elsewhere:2:gone")  # no lease: dead
    for key in (live, dead):
        lake.put(key, b"part")

    out = CliRunner().invoke(app, ["streamer", "recover"])
    assert out.exit_code == 0, out.output
    assert "deleted 1 uncommitted part(s) of dead streamers' batches" in out.output
    assert lake.exists(live) and not lake.exists(dead)
    assert ledger.pending_parts() == [live]

    out = CliRunner().invoke(app, ["streamer", "recover", "--all-owners"])
    assert out.exit_code == 0, out.output
    assert "deleted 1 uncommitted part(s) of every streamer's batches" in out.output
    assert not lake.exists(live) and ledger.counts() == {"objects": 0}
    ledger.close()


def test_cli_run_quarantines_lone_surrogates_instead_of_crashing(settings: Settings) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``): the parser reads it, but it is no text
    any file or table can hold. Such a record is quarantined alone, naming its field (the
    quarantine file stays valid UTF-8 JSON with the escape), and the streamer goes on: it used
    to die writing the quarantine file, on every restart again, so one sender stopped the
    loading of everyone; then a vendor B or visitor-event object was rejected whole."""
    import json

    from tenpo.control import ControlPlane

    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("t1", "Tenant One")
    store = control.create_store("t1", "T01", "Store T01")
    control.create_device("t1", "pc-1", store.store_id, "people_counter", lines=("entrance",))
    control.create_device("t1", "cam-1", store.store_id, "rgb_camera")
    control.dispose()
    receipt = (
        '{"storeCode": "T01", "registerId": "R1", "receiptId": "%s",'
        ' "transactedAt": "2026-10-05T12:01:09+09:00", "type": "SALE", "items": [{"sku":'
        ' "4901777000011", "name": "%s", "qty": 1, "unitPrice": "100", "discount": "0",'
        ' "taxRate": "10"}], "subtotal": "100", "tax": "10", "total": "110"}'
    )
    count = (
        '{"events": [{"v": 1, "device_id": "pc-1", "seq": 1, "type": "count", "line": "%s",'
        ' "interval_start": "2026-10-05T10:00:00+09:00",'
        ' "interval_end": "2026-10-05T10:15:00+09:00", "in": 1, "out": 1}]}'
    )
    visit = (
        '{"camera_id": "cam-1", "person_id": "%s", "event": "entry",'
        ' "ts": "2026-10-05T11:05:35+09:00", "quality": 0.9, "track_id": "t1"}\n'
    )
    lake = open_lake(settings.lake_root)
    bus = open_bus(settings)
    landing = LandingZone(lake, bus)
    landing.land("pos_vendor_b", "t1", (receipt % ("bad", "tea\\ud800")).encode(), "json")
    landing.land("iot", "t1", (count % "entrance\\udfff").encode(), "json")
    landing.land("visitor_events", "t1", (visit % "p\\ud83d").encode(), "jsonl")
    landing.land("pos_vendor_b", "t1", (receipt % ("good", "tea")).encode(), "json")
    bus.close()

    out = CliRunner().invoke(app, ["streamer", "run", "--until-idle", "--idle", "0.3"])

    assert out.exit_code == 0, out.output
    assert "loaded: 4 objects" in out.output
    txns = read_table(lake, "raw_pos_transactions", "t1")
    assert txns["transaction_id"].to_pylist() == ["R1-good"]
    keys = [k for k in lake.list("quarantine/") if k.endswith(".jsonl")]
    assert len(keys) == 3, keys
    entries = {}
    for key in keys:
        [entry] = [json.loads(line) for line in lake.get(key).decode("utf-8").splitlines()]
        entries[entry["source"]] = entry
    assert set(entries) == {"pos_vendor_b", "iot", "visitor_events"}
    assert entries["iot"]["record"]["line"] == "entrance\udfff"  # kept as received
    assert "unicode string" in entries["iot"]["reason"]
    # Each bad record alone, naming its field (not the whole object, "Pre-ETL ... failed").
    assert entries["pos_vendor_b"]["reason"] == (
        "receipt 0: items.0.name: Value error, holds a lone surrogate (U+D800): not Unicode text"
    ), entries["pos_vendor_b"]
    assert entries["pos_vendor_b"]["record"]["items"][0]["name"] == "tea\ud800"
    assert entries["visitor_events"]["reason"] == (
        "line 1: person_id: Value error, holds a lone surrogate (U+D83D): not Unicode text"
    )
