"""POS-specific gateway behaviour: batch status, encoding refusal, the POS size limit."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient

from tenpo.bus import open_bus
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings
from tenpo.gateway import create_app
from tenpo.lake import open_lake
from tenpo.streamer import Streamer, read_table
from tests.gateway.conftest import SAMPLES, Gateway, Keys
from tests.gateway.test_ingest_api import assert_problem

SALES = (SAMPLES / "vendor_a_sales.csv").read_bytes()
MASTER = (SAMPLES / "vendor_a_master.csv").read_bytes()
VENDOR_MAPPINGS = Path(__file__).parents[1] / "pos" / "vendors"


def load(gateway: Gateway) -> None:
    streamer = Streamer(
        gateway.settings, gateway.lake, gateway.bus, gateway.control.directory(), fetch_timeout=0.05
    )
    try:
        streamer.run_until_idle(0.2)
    finally:
        streamer.close()


def test_batch_status_from_landed_to_quarantined_to_loaded_after_the_master(
    gateway: Gateway,
) -> None:
    posted = gateway.client.post("/v1/pos/vendor_a/sales", content=SALES, headers=gateway.auth())
    assert posted.status_code == 202, posted.text
    object_id = posted.json()["object_id"]
    url = f"/v1/pos/batches/{object_id}"

    landed = gateway.client.get(url, headers=gateway.auth()).json()
    assert (landed["status"], landed["source"], landed["accepted_rows"]) == (
        "landed", "pos_vendor_a", 0,
    )  # fmt: skip
    assert landed["landing_key"] == posted.json()["key"]

    load(gateway)  # tenant acme has no master yet: register 0001 is unknown
    rejected = gateway.client.get(url, headers=gateway.auth()).json()
    assert rejected["status"] == "rejected" and rejected["accepted_rows"] == 0
    assert rejected["quarantined"] == rejected["replayable"] == 2
    assert all("register '0001' unknown on 2026-10-05" in r["reason"] for r in rejected["reasons"])
    assert [r["line"] for r in rejected["reasons"]] == [2, 4]
    assert len(rejected["reason_counts"]) == 2  # one per receipt (the id is in the reason)

    master = gateway.client.post("/v1/pos/vendor_a/master", content=MASTER, headers=gateway.auth())
    assert master.status_code == 202, master.text
    load(gateway)  # loading the master replays the sales
    loaded = gateway.client.get(url, headers=gateway.auth()).json()
    assert loaded["status"] == "loaded" and loaded["quarantined"] == 0
    assert loaded["accepted_rows"] == 5  # 2 transactions + 3 lines
    status_of_master = gateway.client.get(
        f"/v1/pos/batches/{master.json()['object_id']}", headers=gateway.auth()
    ).json()
    assert status_of_master["status"] == "loaded"
    assert status_of_master["source"] == "pos_vendor_a_master"

    # A read-only key of the same tenant may look; another tenant never sees it.
    assert gateway.client.get(url, headers=gateway.auth(gateway.keys.acme_read)).status_code == 200
    other = gateway.client.get(url, headers=gateway.auth(gateway.keys.beta))
    assert_problem(other, 404, f"no POS upload {object_id!r} for this tenant")


def test_partially_quarantined_batch_names_the_reasons(gateway: Gateway) -> None:
    good = {
        "storeCode": "T01", "registerId": "R1", "receiptId": "B-1",
        "transactedAt": "2026-10-05T12:00:00+09:00", "type": "SALE",
        "items": [{"sku": "1", "name": "tea", "qty": 1, "unitPrice": "100", "taxRate": "8"}],
        "subtotal": "100", "tax": "8", "total": "108",
    }  # fmt: skip
    bad = {**good, "receiptId": "B-2", "tax": "30", "total": "130"}
    posted = gateway.client.post(
        "/v1/pos/vendor_b/sales", content=json.dumps([good, bad]), headers=gateway.auth()
    )
    load(gateway)
    got = gateway.client.get(
        f"/v1/pos/batches/{posted.json()['object_id']}", headers=gateway.auth()
    ).json()
    assert got["status"] == "partially_quarantined"
    assert (got["accepted_rows"], got["quarantined"], got["replayable"]) == (2, 1, 0)
    (reason,) = got["reasons"]
    assert reason["line"] == 2 and "tax 30.00 differs from the expected 8.00" in reason["reason"]


def test_batch_status_auth_and_unknown_ids(gateway: Gateway) -> None:
    assert_problem(gateway.client.get("/v1/pos/batches/abc"), 401)
    _, iot_only = gateway.control.create_api_key("acme", "iot", ["iot:write"])
    forbidden = gateway.client.get("/v1/pos/batches/abc", headers=gateway.auth(iot_only))
    assert_problem(forbidden, 403, "'read'")
    missing = gateway.client.get("/v1/pos/batches/abc", headers=gateway.auth())
    assert_problem(missing, 404, "no POS upload 'abc'")
    bad_id = gateway.client.get("/v1/pos/batches/..%2Fx", headers=gateway.auth())
    assert bad_id.status_code in (404, 422)


def test_utf8_file_sent_as_vendor_a_is_refused_with_415(gateway: Gateway) -> None:
    utf8 = SALES.decode("cp932").encode("utf-8")
    for route, body in (
        ("/v1/pos/vendor_a/sales", utf8),
        ("/v1/pos/vendor_a/sales", b"\xef\xbb\xbf" + utf8),
        ("/v1/pos/vendor_a/master", MASTER.decode("cp932").encode("utf-8")),
    ):
        resp = gateway.client.post(route, content=body, headers=gateway.auth())
        problem = assert_problem(
            resp, 415, "body is UTF-8 text, but vendor_a sends CP932 (Shift_JIS)"
        )
        assert problem["encoding"] == "utf-8"
    assert gateway.landed() == []


def test_other_format_sent_as_vendor_a_is_400_naming_the_missing_columns(
    gateway: Gateway,
) -> None:
    resp = gateway.client.post(
        "/v1/pos/vendor_a/sales", content=b'{"receipts": []}', headers=gateway.auth()
    )
    assert_problem(resp, 400, "vendor_a sales CSV is not in the vendor's format", "レジ番号")
    assert gateway.landed() == []


def test_pos_uploads_have_their_own_size_limit(gateway: Gateway) -> None:
    assert Settings().pos_max_body_bytes == 100 * 1024 * 1024  # the default
    limit = gateway.settings.pos_max_body_bytes
    assert limit > gateway.settings.max_body_bytes  # the fixture: 96 KiB vs 64 KiB
    receipt = json.loads((SAMPLES / "vendor_b_sales.json").read_text())
    receipts = receipt["receipts"] if isinstance(receipt, dict) else receipt
    big = json.dumps({"receipts": receipts * max(1, (70 * 1024) // len(json.dumps(receipts)))})
    assert gateway.settings.max_body_bytes < len(big) < limit
    ok = gateway.client.post("/v1/pos/vendor_b/sales", content=big, headers=gateway.auth())
    assert ok.status_code == 202, ok.text
    too_big = gateway.client.post(
        "/v1/pos/vendor_b/sales", content=b" " * (limit + 1), headers=gateway.auth()
    )
    assert_problem(too_big, 413, f"limit of {limit} bytes")


def test_declarative_vendor_end_to_end(
    settings: Settings, control: ControlPlane, seeded_control_db: tuple[Path, Keys]
) -> None:
    """vendor_c exists only as tests/pos/vendors/vendor_c.toml: POST, stream, raw tables."""
    cfg = settings.model_copy(update={"vendor_mappings_dir": VENDOR_MAPPINGS})
    lake, bus = open_lake(cfg.lake_root), open_bus(cfg)
    app = create_app(cfg, control=control, lake=lake, bus=bus)
    token = seeded_control_db[1].acme
    header = "Store\tTill\tTicket\tDate\tType\tLine\tEAN\tDescription\tQty\tNet Price\tDiscount"
    header += "\tNet Amount\tVAT\tTicket Total"
    row = "T01\tC1\t1\t05/10/2026 10:15\tS\t1\t4900000000011\tTea\t2\t120.50\t\t241.00\t8%\t260.00"
    body = f"{header}\n{row}\n".encode()
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with TestClient(app) as client:
            posted = client.post("/v1/pos/vendor_c/sales", content=body, headers=auth)
            assert posted.status_code == 202, posted.text
            assert posted.json()["counts"] == {"rows": 1}
            assert posted.json()["key"].startswith("landing/pos_vendor_c/tenant=acme/")
            other = body.replace(b"T01\t", b"B01\t")  # beta's store: refused, never resolved
            assert_problem(
                client.post("/v1/pos/vendor_c/sales", content=other, headers=auth), 403, "'B01'"
            )
            wrong = client.post("/v1/pos/vendor_c/sales", content=b"a,b\n1,2\n", headers=auth)
            assert_problem(wrong, 400, "vendor_c sales file is not in the vendor's format")
            unknown = client.post("/v1/pos/vendor_z/sales", content=body, headers=auth)
            assert_problem(unknown, 404, "vendor_a, vendor_b, vendor_c")
            streamer = Streamer(cfg, lake, bus, control.directory(), fetch_timeout=0.05)
            try:
                streamer.run_until_idle(0.2)
            finally:
                streamer.close()
            status = client.get(
                f"/v1/pos/batches/{posted.json()['object_id']}", headers=auth
            ).json()
            assert (status["status"], status["accepted_rows"]) == ("loaded", 2)
    finally:
        bus.close()
    (tx,) = read_table(lake, "raw_pos_transactions").to_pylist()
    assert (tx["vendor"], tx["transaction_id"], tx["total_incl_tax"]) == (
        "vendor_c", "T01-C1-1", Decimal("260.00"),
    )  # fmt: skip


def reject_only_body(receipts: int) -> bytes:
    """Vendor A CSV of ``receipts`` one-line receipts, each rejected (合計金額 off by 200)."""
    header = SALES.decode("cp932").split("\r\n", 1)[0]
    rows = [
        f"0001,{i},2026/10/05 10:00:00,売上,1,49000001,お茶{'あ' * 20},1,100,,100,標準,300"
        for i in range(1, receipts + 1)
    ]
    return ("\r\n".join([header, *rows]) + "\r\n").encode("cp932")


def test_reject_only_body_is_quarantined_compactly_and_its_status_paged(
    gateway: Gateway,
) -> None:
    """Issue 11: a reject-only body must not blow up into a quarantine many times its size,
    and its status must be cheap and paged."""
    master = gateway.client.post("/v1/pos/vendor_a/master", content=MASTER, headers=gateway.auth())
    assert master.status_code == 202
    body = reject_only_body(600)
    posted = gateway.client.post("/v1/pos/vendor_a/sales", content=body, headers=gateway.auth())
    assert posted.status_code == 202, posted.text
    load(gateway)
    [qkey] = gateway.lake.list("quarantine/raw_pos_transactions/")
    *details, tail = gateway.lake.get(qkey).splitlines()
    assert len(details) == 100  # the first rejects in full, then ONE line for the other 500
    assert len(tail) < 8 * 500  # a few bytes per grouped reject (was ~6x the body in all)
    url = f"/v1/pos/batches/{posted.json()['object_id']}"
    first = gateway.client.get(url, headers=gateway.auth()).json()
    assert first["status"] == "rejected" and first["quarantined"] == 600
    assert first["entries"] == 101  # 100 single rejects, then one group of the other 500
    assert [r["line"] for r in first["reasons"]] == list(range(2, 102))
    assert all("lines add up to 100 but 合計金額 is 300" in r["reason"] for r in first["reasons"])
    assert first["reason_counts"] == {
        "lines add up to 100 but 合計金額 is 300 (difference -200)": 600
    }
    page = gateway.client.get(f"{url}?offset=100&limit=5", headers=gateway.auth()).json()
    [group] = page["reasons"]
    assert page["offset"] == 100 and group["count"] == 500
    assert group["lines"] == list(range(102, 602))  # every rejected line, by number
    refused = gateway.client.get(f"{url}?limit=5000", headers=gateway.auth())
    assert refused.status_code == 422


def test_quarantine_records_are_bounded() -> None:
    from datetime import UTC, date, datetime

    from tenpo.core.preetl import Reject
    from tenpo.streamer._quarantine import RECORD_LIMIT, quarantine_files

    huge = {"rows": ["x" * 1000] * 1000}
    files = quarantine_files(
        [Reject("raw_pos_transactions", "bad", record=huge, line=2)],
        tenant_id="t1", day=date(2026, 10, 5), object_id="o", source="s", source_key="k",
        rejected_at=datetime(2026, 10, 5, tzinfo=UTC),
    )  # fmt: skip
    [line] = [json.loads(v) for v in files.values()]
    assert line["record"]["chars"] > 1_000_000
    assert len(line["record"]["excerpt"]) == RECORD_LIMIT
