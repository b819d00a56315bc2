"""Airレジ end to end: ``POST /v1/pos/airregi/sales?store=`` → landing → streamer → raw rows,
the same rows as ``tenpo pos convert --vendor airregi --store``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from tenpo.control.directory import StaticDirectory, StoreRef
from tenpo.pos import convert_files
from tenpo.streamer import read_table
from tests.gateway.conftest import Gateway
from tests.gateway.test_ingest_api import assert_problem
from tests.gateway.test_pos_batches import load

GOLDEN = Path(__file__).parents[1] / "pos" / "data" / "airregi" / "kaikei_meisai.csv"
URL = "/v1/pos/airregi/sales"
VOLATILE = ("source_object_id", "received_at")


def test_an_airregi_export_is_refused_without_its_store_or_with_another_tenants(
    gateway: Gateway,
) -> None:
    body = GOLDEN.read_bytes()
    assert_problem(
        gateway.client.post(URL, content=body, headers=gateway.auth()), 422, "?store=<store code>"
    )
    assert_problem(
        gateway.client.post(f"{URL}?store=B01", content=body, headers=gateway.auth()),
        403,
        "store code 'B01' is not a store of tenant 'acme'",
    )
    no_columns = "伝票番号,商品名\r\n1,a\r\n".encode("cp932")
    assert_problem(
        gateway.client.post(f"{URL}?store=T01", content=no_columns, headers=gateway.auth()),
        400,
        "lacks the column(s): 数量",
    )
    utf8 = body.decode("cp932").encode("utf-8")
    assert_problem(
        gateway.client.post(f"{URL}?store=T01", content=utf8, headers=gateway.auth()), 415
    )
    assert gateway.landed() == []


def test_an_airregi_export_is_landed_loaded_and_equals_pos_convert(gateway: Gateway) -> None:
    body = GOLDEN.read_bytes()
    posted = gateway.client.post(f"{URL}?store=T01", content=body, headers=gateway.auth())
    assert posted.status_code == 202, posted.text
    assert posted.json()["counts"] == {"rows": 14}
    assert posted.json()["key"].startswith("landing/pos_airregi/tenant=acme/")
    (event,) = gateway.events()
    assert event["meta"]["store_code"] == "T01"
    gateway.bus.publish("objects.registered", event, event_id=str(event["key"]))  # re-deliver
    load(gateway)

    status = gateway.client.get(
        f"/v1/pos/batches/{posted.json()['object_id']}", headers=gateway.auth()
    ).json()
    assert status["status"] == "partially_quarantined"
    assert (status["quarantined"], status["replayable"]) == (3, 0)
    assert sorted(r["line"] for r in status["reasons"]) == [9, 11, 14]

    store = next(s for s in gateway.control.list_stores("acme") if s.code == "T01")
    directory = StaticDirectory(stores=[StoreRef(store.store_id, "acme", "T01")])
    converted = convert_files("airregi", [GOLDEN], directory, "acme", store="T01")
    for name in ("raw_pos_transactions", "raw_pos_lines"):
        loaded = read_table(gateway.lake, name)
        assert loaded.num_rows == converted.tables[name].num_rows  # loaded once
        assert _comparable(loaded) == _comparable(converted.tables[name])
    kinds = sorted(read_table(gateway.lake, "raw_pos_transactions")["kind"].to_pylist())
    assert kinds == ["return", "sale", "sale", "sale", "sale", "void"]


def _comparable(table: pa.Table) -> list[dict[str, object]]:
    rows = table.drop_columns([c for c in VOLATILE if c in table.column_names]).to_pylist()
    return sorted(rows, key=lambda r: sorted((k, str(v)) for k, v in r.items()))
