"""Quarantine replay: vendor A sales whose register is unknown load once a master resolves it."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from tenpo.bus.memory import MemoryBus
from tenpo.control.directory import StaticDirectory, StoreRef
from tenpo.core.settings import Settings
from tenpo.lake import Lake, LandingZone
from tenpo.pos import VendorAMasterPreEtl, VendorAPreEtl
from tenpo.streamer import Streamer, read_table
from tenpo.warehouse import Warehouse

D1 = date(2026, 10, 5)
HEADER = (
    "レジ番号,レシート番号,取引日時,取引区分,行番号,JANコード,商品名,"
    "数量,単価,値引額,金額,税率区分,合計金額"
)
# Register 0001 is in the master from the start; 0002 only in the master sent later.
SALES = [
    "0001,000101,2026/10/05 09:12:44,売上,1,4901777000011,緑茶 525ml,1,140,,140,軽減,410",
    "0001,000101,2026/10/05 09:12:44,売上,2,4902102000022,ノート,1,270,,270,標準,410",
    "0002,000007,2026/10/05 10:00:00,売上,1,4901777000011,緑茶 525ml,2,140,,280,軽減,1380",
    "0002,000007,2026/10/05 10:00:00,売上,2,4902102000022,傘,1,1100,,1100,標準,1380",
    "0002,000008,2026/10/05 10:05:00,売上,1,4902102000022,傘,1,1100,,1000,標準,1000",  # bad
]
MASTER_1 = "レジ番号,店舗コード,店舗名,適用開始日,適用終了日\r\n0001,T01,本町店,2026/04/01,\r\n"
MASTER_2 = "レジ番号,店舗コード,店舗名,適用開始日,適用終了日\r\n0002,T02,駅前店,2026/04/01,\r\n"


def cp932(text: str) -> bytes:
    return text.encode("cp932")


def make(cfg: Settings, lake: Lake, bus: MemoryBus) -> Streamer:
    directory = StaticDirectory(
        stores=[StoreRef("s-01", "t1", "T01"), StoreRef("s-02", "t1", "T02")]
    )
    pre_etls = {
        "pos_vendor_a": VendorAPreEtl(),
        "pos_vendor_a_master": VendorAMasterPreEtl(),
    }
    return Streamer(cfg, lake, bus, directory, pre_etls, fetch_timeout=0.05)


def quarantined(lake: Lake) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    for key in lake.list("quarantine/raw_pos_transactions/"):
        lines += [json.loads(line) for line in lake.get(key).decode().splitlines()]
    return lines


def test_sales_first_master_later_replays_automatically(
    cfg: Settings, lake: Lake, bus: MemoryBus, landing: LandingZone
) -> None:
    streamer = make(cfg, lake, bus)
    try:
        landing.land("pos_vendor_a_master", "t1", cp932(MASTER_1), "csv", day=D1)
        streamer.run_until_idle(0.2)
        sales = landing.land(
            "pos_vendor_a", "t1", cp932("\r\n".join([HEADER, *SALES]) + "\r\n"), "csv", day=D1
        )
        first = streamer.run_until_idle(0.2)
        assert first.rows == {"raw_pos_transactions": 1, "raw_pos_lines": 2}
        reasons = sorted((r["replayable"], r["reason"]) for r in quarantined(lake))
        assert reasons[0][0] is False and "金額 1000 is not" in str(reasons[0][1])
        assert reasons[1][0] is True and "register '0002' unknown on 2026-10-05" in str(
            reasons[1][1]
        )
        key = ("pos_vendor_a", "t1", sales.event.object_id)
        waiting = streamer.ledger.replay_status(key)
        assert waiting is not None and waiting.status == "waiting" and waiting.replayable == 1

        # The master that resolves register 0002 arrives: its load replays the sales object.
        landing.land("pos_vendor_a_master", "t1", cp932(MASTER_2), "csv", day=D1)
        second = streamer.run_until_idle(0.2)
        assert second.replayed == 1
        assert second.rows == {"raw_pos_transactions": 1, "raw_pos_lines": 2}

        tx = read_table(lake, "raw_pos_transactions").sort_by("transaction_id").to_pylist()
        assert [(t["transaction_id"], t["store_id"]) for t in tx] == [
            ("0001-20261005-000101", "s-01"),
            ("0002-20261005-000007", "s-02"),
        ]
        assert tx[1]["total_incl_tax"] == Decimal(1380) and tx[1]["total_tax"] == Decimal(120)
        assert read_table(lake, "raw_pos_lines").num_rows == 4  # nothing duplicated
        # Only the receipt that is really bad stays quarantined; the object is marked replayed.
        assert [r["replayable"] for r in quarantined(lake)] == [False]
        done = streamer.ledger.replay_status(key)
        assert done is not None and done.status == "replayed" and done.replays == 1
        loaded = streamer.ledger.loaded([key])[key]
        assert loaded.rows == 6 and loaded.rejects == 1

        # Replaying again (CLI after a fix) finds nothing waiting and writes nothing.
        assert streamer.replay(tenant_id="t1").replayed == 0
        with Warehouse(lake) as wh:
            daily = wh.sql(
                "SELECT store_id, sum(total_incl_tax) AS s FROM raw_pos_transactions "
                "GROUP BY store_id ORDER BY store_id"
            ).to_pylist()
        assert daily == [
            {"store_id": "s-01", "s": Decimal(410)},
            {"store_id": "s-02", "s": Decimal(1380)},
        ]
    finally:
        streamer.close()


def test_manual_replay_without_a_resolving_master_keeps_waiting(
    cfg: Settings, lake: Lake, bus: MemoryBus, landing: LandingZone
) -> None:
    streamer = make(cfg, lake, bus)
    try:
        sales = landing.land(
            "pos_vendor_a", "t1", cp932("\r\n".join([HEADER, *SALES[:2]]) + "\r\n"), "csv", day=D1
        )
        assert streamer.run_until_idle(0.2).rows == {}
        stats = streamer.replay(tenant_id="t1", source="pos_vendor_a")
        assert stats.replayed == 1 and stats.rows == {} and stats.rejects == 1
        status = streamer.ledger.replay_status(("pos_vendor_a", "t1", sales.event.object_id))
        assert status is not None and status.status == "waiting" and status.replays == 1
        assert streamer.replay(tenant_id="other").replayed == 0
        assert [r["replayable"] for r in quarantined(lake)] == [True]
    finally:
        streamer.close()


def test_cli_replay_after_a_store_is_added(settings: Settings) -> None:
    from typer.testing import CliRunner

    from tenpo.bus import open_bus
    from tenpo.cli import app
    from tenpo.control import ControlPlane
    from tenpo.lake import open_lake

    control = ControlPlane.open(settings.control_db_url)
    control.create_tenant("t1", "Tenant One")
    receipt = {
        "storeCode": "T09", "registerId": "R1", "receiptId": "B-1",
        "transactedAt": "2026-10-05T12:00:00+09:00", "type": "SALE",
        "items": [{"sku": "1", "name": "tea", "qty": 1, "unitPrice": "100", "taxRate": "8.000"}],
        "subtotal": "100", "tax": "8", "total": "108",
    }  # fmt: skip
    lake = open_lake(settings.lake_root)
    bus = open_bus(settings)
    LandingZone(lake, bus).land("pos_vendor_b", "t1", json.dumps(receipt).encode(), "json")
    bus.close()
    runner = CliRunner()
    out = runner.invoke(app, ["streamer", "run", "--until-idle", "--idle", "0.3"])
    assert out.exit_code == 0, out.output
    assert read_table(lake, "raw_pos_transactions").num_rows == 0

    store = control.create_store("t1", "T09", "New store")  # the fix: the store now exists
    control.dispose()
    out = runner.invoke(app, ["streamer", "replay", "--tenant", "t1", "--source", "pos_vendor_b"])
    assert out.exit_code == 0, out.output
    assert "replayed 1 object(s): 2 new rows, 0 record(s) still quarantined" in out.output
    tx = read_table(lake, "raw_pos_transactions").to_pylist()
    assert [(t["store_id"], t["total_incl_tax"]) for t in tx] == [(store.store_id, Decimal(108))]
    out = runner.invoke(app, ["streamer", "replay"])
    assert "replayed 0 object(s)" in out.output
