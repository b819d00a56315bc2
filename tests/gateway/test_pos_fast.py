"""The POS sales upload's fast path (tenpo.gateway._pos_fast) answers byte for byte as the route."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tenpo.bus import open_bus
from tenpo.gateway import create_app
from tenpo.gateway._pos_fast import PosSalesFastPath
from tenpo.lake import open_lake
from tests.gateway.conftest import SAMPLES, Gateway

VENDOR_B = json.loads((SAMPLES / "vendor_b_sales.json").read_bytes())


def _body(receipt_id: str, store: str = "T01") -> bytes:
    doc = json.loads(json.dumps(VENDOR_B))
    doc["receipts"] = doc["receipts"][:1]
    doc["receipts"][0].update(storeCode=store, receiptId=receipt_id)
    return json.dumps(doc, ensure_ascii=False).encode()


def test_pos_fast_path_answers_byte_for_byte_as_the_route(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each case is posted to the gateway with the fast path serving what it accepts, then,
    in the same order, to a second gateway (its own lake and bus, the same control plane)
    where the fast path declines everything: status, headers and body must be the same, and
    the fast path must have served exactly the cases marked so."""
    keys = gateway.keys
    for token in (keys.acme, keys.acme_read, keys.beta):
        gateway.control.authenticate(token)  # in the auth cache, as after a first request
    acme = gateway.auth()
    big = b'{"receipts": [' + b" " * (100 * 1024) + b"]}"
    cases: list[tuple[str, dict[str, str], bytes, bool]] = [
        ("vendor_b", acme, _body("F-1"), True),
        ("vendor_b", acme, _body("F-1"), True),  # a re-send: created false
        ("vendor_b", acme | {"Idempotency-Key": "k-1"}, _body("F-2"), True),
        ("vendor_b", acme | {"Idempotency-Key": "k-1"}, _body("F-3"), True),  # 409
        ("vendor_b", acme, b'{"receipts": [1]}', True),  # 400
        ("vendor_b", acme, b"", True),  # 400 empty
        ("vendor_b", acme, _body("F-4", store="B01"), True),  # another tenant's store: 403
        ("vendor_b", acme, big, True),  # 413
        ("vendor_b", gateway.auth(keys.beta), _body("F-5", store="B01"), True),
        ("nope", acme, _body("F-6"), False),  # unknown vendor: 404
        ("vendor_b", {}, _body("F-7"), False),  # 401
        ("vendor_b", {"Authorization": "Basic abc"}, _body("F-7"), False),
        ("vendor_b", gateway.auth(keys.acme_read), _body("F-8"), False),  # 403 scope
        ("vendor_b", gateway.auth(keys.acme_revoked), _body("F-9"), False),  # 401 revoked
        ("vendor_b", acme | {"Idempotency-Key": "x" * 256}, _body("F-10"), False),  # 422
        ("vendor_b?store=T01", acme, _body("F-11"), False),  # 422 (no ?store= for B)
    ]
    served: list[bool] = []
    accepts = PosSalesFastPath._accepts

    def spy(self: PosSalesFastPath, scope: Any, vendor: str) -> Any:
        found = accepts(self, scope, vendor)
        served.append(found is not None)
        return found

    def post(client: TestClient, vendor: str, headers: dict[str, str], body: bytes) -> Any:
        vendor, _, query = vendor.partition("?")
        url = f"/v1/pos/{vendor}/sales" + (f"?{query}" if query else "")
        return client.post(url, content=body, headers=headers)

    monkeypatch.setattr(PosSalesFastPath, "_accepts", spy)
    fast = [post(gateway.client, v, h, b) for v, h, b, _ in cases]
    assert served == [c[-1] for c in cases if "?" not in c[0]]

    monkeypatch.setattr(PosSalesFastPath, "_accepts", lambda self, scope, vendor: None)
    other = gateway.settings.model_copy(update={"data_dir": gateway.settings.data_dir / "route"})
    other.data_dir.mkdir()
    lake, bus = open_lake(other.lake_root), open_bus(other)
    app = create_app(other, control=gateway.control, lake=lake, bus=bus)
    with TestClient(app) as client:
        route = [post(client, v, h, b) for v, h, b, _ in cases]
    bus.close()
    statuses = [r.status_code for r in fast]
    assert statuses == [202, 202, 202, 409, 400, 400, 403, 413, 202] + [
        404,
        401,
        401,
        403,
        401,
        422,
        422,
    ]
    assert json.loads(fast[1].content)["created"] is False
    for (vendor, headers, _, _), f, r in zip(cases, fast, route, strict=True):
        assert (f.status_code, f.headers.multi_items(), f.content) == (
            r.status_code,
            r.headers.multi_items(),
            r.content,
        ), (vendor, headers)
