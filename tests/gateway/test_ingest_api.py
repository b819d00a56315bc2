"""The gateway over HTTP: happy paths land bytes and publish events; bad requests get problems."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from tenpo.core.ids import content_id
from tenpo.lake import parse_partition
from tests.gateway.conftest import SAMPLES, Gateway, today_tokyo

VENDOR_A = (SAMPLES / "vendor_a_sales.csv").read_bytes()
VENDOR_A_MASTER = (SAMPLES / "vendor_a_master.csv").read_bytes()
VENDOR_B = (SAMPLES / "vendor_b_sales.json").read_bytes()
DEVICE_EVENTS = (SAMPLES / "device_events.json").read_bytes()
VISITOR_EVENTS = (
    b'{"camera_id": "cam-1", "person_id": "p-1", "event": "entry", '
    b'"ts": "2026-10-05T10:00:00+09:00", "quality": 0.9, "track_id": "t-1"}\n'
    b'{"camera_id": "cam-1", "person_id": "p-1", "event": "exit", '
    b'"ts": "2026-10-05T10:20:00+09:00", "quality": 0.8, "track_id": "t-1"}\n'
)


def vendor_b_receipt(store_code: str) -> bytes:
    doc = json.loads(VENDOR_B)
    doc["receipts"][0]["storeCode"] = store_code
    return json.dumps(doc, ensure_ascii=False).encode()


def assert_problem(
    resp: httpx.Response, status: int, *detail_parts: str, title: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` whose detail names every part."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    if title is not None:
        assert body["title"] == title
    for part in detail_parts:
        assert part in body["detail"], body["detail"]
    return body


# -- happy paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body", "source", "ext", "content_type", "counts", "meta"),
    [
        (
            "/v1/pos/vendor_a/sales",
            VENDOR_A,
            "pos_vendor_a",
            "csv",
            "text/csv; charset=cp932",
            {"rows": 3},
            {"vendor": "vendor_a"},
        ),
        (
            "/v1/pos/vendor_b/sales",
            VENDOR_B,
            "pos_vendor_b",
            "json",
            "application/json",
            {"receipts": 1},
            {"vendor": "vendor_b"},
        ),
        (
            "/v1/pos/vendor_a/master",
            VENDOR_A_MASTER,
            "pos_vendor_a_master",
            "csv",
            "text/csv; charset=cp932",
            {"rows": 1},
            {"vendor": "vendor_a"},
        ),
        (
            "/v1/iot/events",
            DEVICE_EVENTS,
            "iot",
            "json",
            "application/json",
            {"events": 2},
            {},
        ),
        (
            "/v1/video/visitor-events",
            VISITOR_EVENTS,
            "visitor_events",
            "jsonl",
            "application/x-ndjson",
            {"events": 2},
            {},
        ),
    ],
)
def test_upload_lands_bytes_and_publishes_event(
    gateway: Gateway,
    route: str,
    body: bytes,
    source: str,
    ext: str,
    content_type: str,
    counts: dict[str, int],
    meta: dict[str, str],
) -> None:
    resp = gateway.client.post(route, content=body, headers=gateway.auth())

    assert resp.status_code == 202, resp.text
    answer = resp.json()
    object_id = content_id(body)
    key = f"landing/{source}/tenant=acme/date={today_tokyo().isoformat()}/{object_id}.{ext}"
    assert answer == {
        "object_id": object_id,
        "key": key,
        "bytes": len(body),
        "created": True,
        "counts": counts,
    }
    assert gateway.landed() == [key]
    assert gateway.lake.get(key) == body  # kept exactly as received
    assert parse_partition(key) == ("acme", today_tokyo())

    [event] = gateway.events()
    key_id = gateway.control.authenticate(gateway.keys.acme).key_id
    assert event["key"] == key
    assert event["source"] == source
    assert event["tenant_id"] == "acme"
    assert event["object_id"] == object_id
    assert event["size"] == len(body)
    assert event["content_type"] == content_type
    assert event["meta"] == {"key_id": key_id, **meta}


def test_resend_lands_once(gateway: Gateway) -> None:
    first = gateway.client.post("/v1/pos/vendor_b/sales", content=VENDOR_B, headers=gateway.auth())
    again = gateway.client.post("/v1/pos/vendor_b/sales", content=VENDOR_B, headers=gateway.auth())

    assert first.status_code == again.status_code == 202
    assert first.json()["created"] is True
    assert again.json()["created"] is False
    assert again.json()["object_id"] == first.json()["object_id"]
    assert gateway.landed() == [first.json()["key"]]
    assert len(gateway.events()) == 1  # the bus keeps one event per key


def test_idempotency_key_names_the_object(gateway: Gateway) -> None:
    headers = {**gateway.auth(), "Idempotency-Key": "batch-2026-10-05-001"}

    first = gateway.client.post("/v1/iot/events", content=DEVICE_EVENTS, headers=headers)
    again = gateway.client.post("/v1/iot/events", content=DEVICE_EVENTS, headers=headers)

    assert first.status_code == again.status_code == 202
    assert first.json()["object_id"] == again.json()["object_id"] == "k-batch-2026-10-05-001"
    assert (first.json()["created"], again.json()["created"]) == (True, False)
    assert len(gateway.landed("iot")) == 1


def test_idempotency_key_reused_for_other_bytes_is_409(gateway: Gateway) -> None:
    headers = {**gateway.auth(), "Idempotency-Key": "batch-1"}
    gateway.client.post("/v1/iot/events", content=DEVICE_EVENTS, headers=headers)
    other = json.dumps({"events": [json.loads(DEVICE_EVENTS)["events"][0]]}).encode()

    resp = gateway.client.post("/v1/iot/events", content=other, headers=headers)

    body = assert_problem(resp, 409, "'batch-1'", "different content", title="Conflict")
    assert body["type"] == "urn:tenpo:problem:conflict"
    assert body["instance"] == "/v1/iot/events"
    [key] = gateway.landed("iot")
    assert gateway.lake.get(key) == DEVICE_EVENTS  # the first object is untouched


def test_vendor_b_accepts_single_receipt_and_array(gateway: Gateway) -> None:
    receipt = json.loads(VENDOR_B)["receipts"][0]
    for doc, n in ((receipt, 1), ([receipt, {**receipt, "receiptId": "R-2"}], 2)):
        resp = gateway.client.post(
            "/v1/pos/vendor_b/sales", content=json.dumps(doc).encode(), headers=gateway.auth()
        )
        assert resp.status_code == 202, resp.text
        assert resp.json()["counts"] == {"receipts": n}


def test_healthz_reports_lake_and_bus(gateway: Gateway) -> None:
    resp = gateway.client.get("/healthz")

    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "lake": "ok", "bus": "ok", "backlog": 0}
    gateway.client.post("/v1/iot/events", content=DEVICE_EVENTS, headers=gateway.auth())
    assert gateway.client.get("/healthz").json()["backlog"] == 1  # not loaded by the streamer


def test_health_probe_uses_the_streamers_consumer() -> None:
    from tenpo.gateway._routes import STREAMER_CONSUMER
    from tenpo.streamer import CONSUMER

    assert STREAMER_CONSUMER == CONSUMER


# -- authentication and authorisation --------------------------------------------------------


def test_missing_key_is_401_with_bearer_challenge(gateway: Gateway) -> None:
    resp = gateway.client.post("/v1/pos/vendor_a/sales", content=VENDOR_A)

    body = assert_problem(resp, 401, "missing Authorization header", title="Unauthorized")
    assert resp.headers["www-authenticate"] == 'Bearer realm="tenpo"'
    assert body["type"] == "urn:tenpo:problem:auth-error"
    assert gateway.landed() == []


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        ("Basic dXNlcjpwYXNz", "malformed Authorization header"),
        ("Bearer", "malformed Authorization header"),
        ("Bearer not-a-tenpo-key", "malformed API key"),
        ("Bearer tnp_0123456789abcdef_" + "A" * 43, "invalid API key"),
    ],
)
def test_bad_key_is_401(gateway: Gateway, authorization: str, detail: str) -> None:
    resp = gateway.client.post(
        "/v1/pos/vendor_a/sales", content=VENDOR_A, headers={"Authorization": authorization}
    )

    assert_problem(resp, 401, detail)
    assert resp.headers["www-authenticate"] == 'Bearer realm="tenpo", error="invalid_token"'
    assert gateway.landed() == []


def test_revoked_key_is_401(gateway: Gateway) -> None:
    resp = gateway.client.post(
        "/v1/iot/events", content=DEVICE_EVENTS, headers=gateway.auth(gateway.keys.acme_revoked)
    )

    assert_problem(resp, 401, "revoked")


@pytest.mark.parametrize(
    ("route", "scope"),
    [
        ("/v1/pos/vendor_a/sales", "pos:write"),
        ("/v1/pos/vendor_a/master", "pos:write"),
        ("/v1/iot/events", "iot:write"),
        ("/v1/video/visitor-events", "video:write"),
    ],
)
def test_key_without_scope_is_403_naming_it(gateway: Gateway, route: str, scope: str) -> None:
    resp = gateway.client.post(route, content=b"{}", headers=gateway.auth(gateway.keys.acme_read))

    body = assert_problem(resp, 403, f"'{scope}'", title="Forbidden")
    assert body["scope"] == scope
    assert "www-authenticate" not in resp.headers
    assert gateway.landed() == []


def test_other_tenants_store_code_is_403(gateway: Gateway) -> None:
    resp = gateway.client.post(
        "/v1/pos/vendor_b/sales", content=vendor_b_receipt("B01"), headers=gateway.auth()
    )

    body = assert_problem(resp, 403, "store code 'B01'", "'acme'")
    assert body["store_code"] == "B01"
    assert gateway.landed() == []
    assert gateway.events() == []


def test_unknown_store_code_is_403(gateway: Gateway) -> None:
    resp = gateway.client.post(
        "/v1/pos/vendor_b/sales", content=vendor_b_receipt("NOPE"), headers=gateway.auth()
    )

    assert_problem(resp, 403, "store code 'NOPE'")


def test_same_body_is_accepted_for_the_owning_tenant(gateway: Gateway) -> None:
    resp = gateway.client.post(
        "/v1/pos/vendor_b/sales",
        content=vendor_b_receipt("B01"),
        headers=gateway.auth(gateway.keys.beta),
    )

    assert resp.status_code == 202, resp.text
    assert "/tenant=beta/" in resp.json()["key"]


def test_master_naming_other_tenants_store_is_403(gateway: Gateway) -> None:
    master = VENDOR_A_MASTER.replace(b"T01", b"B01")

    resp = gateway.client.post("/v1/pos/vendor_a/master", content=master, headers=gateway.auth())

    assert_problem(resp, 403, "store code 'B01'")
    assert gateway.landed() == []


def test_other_tenants_device_is_403(gateway: Gateway) -> None:
    doc = json.loads(DEVICE_EVENTS)
    doc["events"][1]["device_id"] = "pc-900"  # beta's counter

    resp = gateway.client.post(
        "/v1/iot/events", content=json.dumps(doc).encode(), headers=gateway.auth()
    )

    body = assert_problem(resp, 403, "device 'pc-900'", "tenant 'acme'")
    assert body["device_id"] == "pc-900"
    assert gateway.landed() == []


@pytest.mark.parametrize(
    ("camera", "why"),
    [
        ("cam-900", "beta's camera"),
        ("cam-404", "no such camera"),
        ("pc-001", "acme's people counter, not a camera"),
    ],
)
def test_a_visitor_event_of_a_camera_not_the_tenants_is_403(
    gateway: Gateway, camera: str, why: str
) -> None:
    """Checked at the gateway like devices and POS stores: the old code answered 202, landed
    the batch and the streamer quarantined it later."""
    body = VISITOR_EVENTS.replace(b'"cam-1"', f'"{camera}"'.encode(), 1)  # the first line

    resp = gateway.client.post("/v1/video/visitor-events", content=body, headers=gateway.auth())

    detail = assert_problem(resp, 403, f"camera '{camera}'", "rgb_camera", "tenant 'acme'")
    assert detail["camera_id"] == camera, why
    assert gateway.landed() == [] and gateway.events() == []


def test_a_tenants_own_camera_is_taken_and_the_other_tenant_is_refused_it(
    gateway: Gateway,
) -> None:
    """The same batch: 202 for acme (cam-1 is acme's), 403 for beta naming cam-1."""
    own = gateway.client.post(
        "/v1/video/visitor-events", content=VISITOR_EVENTS, headers=gateway.auth()
    )
    theirs = gateway.client.post(
        "/v1/video/visitor-events", content=VISITOR_EVENTS, headers=gateway.auth(gateway.keys.beta)
    )

    assert own.status_code == 202, own.text
    assert_problem(theirs, 403, "camera 'cam-1'", "tenant 'beta'")
    assert len(gateway.landed()) == 1


# -- routing ---------------------------------------------------------------------------------


def test_unknown_vendor_is_404_naming_it(gateway: Gateway) -> None:
    resp = gateway.client.post("/v1/pos/vendor_z/sales", content=VENDOR_A, headers=gateway.auth())

    body = assert_problem(resp, 404, "'vendor_z'", "vendor_a, vendor_b", title="Not found")
    assert body["vendor"] == "vendor_z"


def test_vendor_b_master_is_404(gateway: Gateway) -> None:
    resp = gateway.client.post("/v1/pos/vendor_b/master", content=b"x", headers=gateway.auth())

    assert_problem(resp, 404, "'vendor_b' has no master upload")


def test_unknown_route_and_method_are_problems(gateway: Gateway) -> None:
    missing = gateway.client.post("/v1/nothing", content=b"x", headers=gateway.auth())
    wrong_method = gateway.client.get("/v1/iot/events", headers=gateway.auth())

    body = assert_problem(missing, 404, "POST /v1/nothing", title="Not Found")
    assert body["type"] == "about:blank"
    assert_problem(wrong_method, 405, title="Method Not Allowed")
    assert wrong_method.headers["allow"] == "POST"


# -- malformed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route",
    [
        "/v1/pos/vendor_a/sales",
        "/v1/pos/vendor_b/sales",
        "/v1/pos/vendor_a/master",
        "/v1/iot/events",
        "/v1/video/visitor-events",
    ],
)
def test_empty_body_is_400(gateway: Gateway, route: str) -> None:
    resp = gateway.client.post(route, content=b"", headers=gateway.auth())

    body = assert_problem(resp, 400, "request body is empty", title="Malformed body")
    assert body["type"] == "urn:tenpo:problem:malformed-body"


@pytest.mark.parametrize(
    ("route", "content", "detail"),
    [
        ("/v1/pos/vendor_b/sales", b'{"receipts": [}', "invalid JSON at line 1 column 15"),
        ("/v1/pos/vendor_b/sales", b"{'a': 1}", "Expecting property name"),
        ("/v1/pos/vendor_b/sales", b'{"storeCode": "\x82\xa0"}', "not UTF-8 text"),
        ("/v1/pos/vendor_b/sales", b"42", "receipt object, an array of receipts"),
        ("/v1/pos/vendor_b/sales", b'{"receipts": {}}', '"receipts" must be an array'),
        ("/v1/pos/vendor_b/sales", b"[1]", "[0] is not a receipt object"),
        ("/v1/iot/events", b'{"events": [', "invalid JSON at line 1"),
        ("/v1/iot/events", b"[]", '{"events": [...]}'),
        ("/v1/iot/events", b'{"events": []}', '"events" is empty'),
        ("/v1/iot/events", b'{"events": [{"seq": 1}]}', "events[0] has no device_id"),
        ("/v1/video/visitor-events", b'{"event": "entry"}\n{oops\n', "line 2"),
        ("/v1/video/visitor-events", b"[1, 2]\n", "line 1 is not a JSON object"),
        ("/v1/pos/vendor_a/sales", VENDOR_A + b"\x81\x20", f"offset {len(VENDOR_A)}"),
        ("/v1/pos/vendor_a/master", b"\x82", "not CP932"),
        ("/v1/pos/vendor_a/master", "レジ番号,店舗名\r\n".encode("cp932"), "no 店舗コード column"),
    ],
)
def test_malformed_body_is_400_naming_the_error(
    gateway: Gateway, route: str, content: bytes, detail: str
) -> None:
    resp = gateway.client.post(route, content=content, headers=gateway.auth())

    assert_problem(resp, 400, detail, title="Malformed body")
    assert gateway.landed() == []
    assert gateway.events() == []


def test_cp932_error_names_the_offset(gateway: Gateway) -> None:
    resp = gateway.client.post(
        "/v1/pos/vendor_a/sales", content=b"ok,\x81\x20", headers=gateway.auth()
    )

    body = assert_problem(resp, 400, "not CP932 (Shift_JIS) text", "at offset 3")
    assert body["offset"] == 3


# -- size limit ------------------------------------------------------------------------------


def chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b"a" * n
        sent += n


def test_too_large_streamed_body_is_413(gateway: Gateway) -> None:
    limit = gateway.settings.max_body_bytes
    resp = gateway.client.post(
        "/v1/video/visitor-events", content=chunks(limit + 1), headers=gateway.auth()
    )

    body = assert_problem(resp, 413, f"limit of {limit} bytes", title="Content too large")
    assert body["type"] == "urn:tenpo:problem:payload-too-large"
    assert gateway.landed() == []


def test_declared_length_over_limit_is_413_before_reading(gateway: Gateway) -> None:
    limit = gateway.settings.pos_max_body_bytes  # POS uploads have their own limit
    resp = gateway.client.post(
        "/v1/pos/vendor_a/sales", content=b"x" * (limit + 10), headers=gateway.auth()
    )

    assert_problem(resp, 413, f"body of {limit + 10} bytes exceeds the limit of {limit} bytes")


def test_body_at_the_limit_is_accepted(gateway: Gateway) -> None:
    limit = gateway.settings.max_body_bytes
    line = b'{"event": "entry"}\n'
    body = line * (limit // len(line))
    resp = gateway.client.post(
        "/v1/video/visitor-events", content=iter([body]), headers=gateway.auth()
    )

    assert resp.status_code == 202, resp.text
    assert resp.json()["bytes"] == len(body)


# -- headers ---------------------------------------------------------------------------------


def test_overlong_idempotency_key_is_422(gateway: Gateway) -> None:
    headers = {**gateway.auth(), "Idempotency-Key": "k" * 300}

    resp = gateway.client.post("/v1/iot/events", content=DEVICE_EVENTS, headers=headers)

    body = assert_problem(resp, 422, "Idempotency-Key", title="Invalid request")
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]


# -- hostile bodies (issue 11) -----------------------------------------------------------------

DEEP = b"[" * 20_000 + b"]" * 20_000  # fits the 64 KiB test limit
HUGE_INT = b"1" * 5000


@pytest.mark.parametrize(
    ("route", "content", "detail"),
    [
        ("/v1/pos/vendor_b/sales", DEEP, "JSON nested too deeply"),
        ("/v1/pos/vendor_b/sales", b'{"receipts": ' + DEEP + b"}", "JSON nested too deeply"),
        ("/v1/iot/events", b'{"events": ' + DEEP + b"}", "JSON nested too deeply"),
        ("/v1/video/visitor-events", b'{"a": ' + DEEP + b"}\n", "nested too deeply"),
        ("/v1/pos/vendor_b/sales", b'{"total": ' + HUGE_INT + b"}", "JSON number too long"),
        ("/v1/iot/events", b'{"events": [{"seq": ' + HUGE_INT + b"}]}", "number too long"),
        ("/v1/video/visitor-events", b'{"seq": ' + HUGE_INT + b"}\n", "number too long"),
    ],
)
def test_deep_nesting_and_huge_integers_are_400_not_500(
    gateway: Gateway, route: str, content: bytes, detail: str
) -> None:
    resp = gateway.client.post(route, content=content, headers=gateway.auth())

    assert_problem(resp, 400, detail, title="Malformed body")
    assert gateway.landed() == []


@pytest.mark.parametrize(
    ("route", "content", "fields"),
    [
        (
            "/v1/pos/vendor_b/sales",
            {"storeCode": "T01", "receiptId": "R1", "receipts": [{"storeCode": "T01"}]},
            "'receiptId', 'storeCode'",
        ),
        (
            "/v1/iot/events",
            {"v": 1, "device_id": "pc-001", "seq": 1, "type": "heartbeat",
             "events": [{"device_id": "pc-001"}]},
            "'device_id', 'seq', 'type', 'v'",
        ),
    ],
)  # fmt: skip
def test_body_both_one_record_and_a_wrapper_is_400_ambiguous(
    gateway: Gateway, route: str, content: dict[str, Any], fields: str
) -> None:
    """The gateway and the streamer would read such a body differently: refuse it."""
    resp = gateway.client.post(route, content=json.dumps(content), headers=gateway.auth())

    assert_problem(resp, 400, "ambiguous body", fields, "not both")
    assert gateway.landed() == []


def test_vendor_a_file_ending_in_ctrl_z_counts_its_real_rows(gateway: Gateway) -> None:
    """The DOS end-of-file mark is no row, as for the Pre-ETL (issue 11)."""
    resp = gateway.client.post(
        "/v1/pos/vendor_a/sales", content=VENDOR_A + b"\x1a", headers=gateway.auth()
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["counts"] == {"rows": 3}
    assert gateway.lake.get(resp.json()["key"]) == VENDOR_A + b"\x1a"  # kept as received


@pytest.mark.parametrize(
    ("route", "content", "detail"),
    [
        (
            "/v1/pos/vendor_b/sales",
            vendor_b_receipt("T01").replace(b'"T01"', b'"T01\\ud800"'),
            "store code 'T01\\ud800'",
        ),
        (
            "/v1/iot/events",
            DEVICE_EVENTS.replace(b'"pc-001"', b'"pc-001\\udfff"', 1),
            "device_id 'pc-001\\udfff'",
        ),
    ],
)
def test_an_id_with_a_lone_surrogate_is_400_not_500(
    gateway: Gateway, route: str, content: bytes, detail: str
) -> None:
    """JSON may escape a lone surrogate (json.loads reads it); the directory look-up of such
    an id raised UnicodeEncodeError, a 500 that also reset the client's connection."""
    assert b"\\ud800" in content or b"\\udfff" in content

    resp = gateway.client.post(route, content=content, headers=gateway.auth())

    assert_problem(resp, 400, detail, "lone surrogate", title="Malformed body")
    assert gateway.landed() == []


@pytest.mark.parametrize(
    ("route", "content", "member"),
    [
        ("/v1/pos/vendor_b/sales", vendor_b_receipt("S" * 50_000), "store_code"),
        (
            "/v1/iot/events",
            json.dumps({"events": [{"device_id": "d" * 50_000}]}).encode(),
            "device_id",
        ),
    ],
)
def test_a_problem_does_not_echo_a_huge_id(
    gateway: Gateway, route: str, content: bytes, member: str
) -> None:
    """An unknown id is named in the 403, cut to a readable length (it was sent back, and
    logged, whole: a 1 MB id gave a 2 MB answer and a 1 MB log line)."""
    resp = gateway.client.post(route, content=content, headers=gateway.auth())

    body = assert_problem(resp, 403, "not", "chars")
    assert len(resp.content) < 2_000
    assert len(body[member]) <= 100


@pytest.mark.parametrize(
    ("route", "content"),
    [
        ("/v1/pos/vendor_a/sales", VENDOR_A),
        ("/v1/pos/vendor_b/sales", VENDOR_B),
        ("/v1/iot/events", DEVICE_EVENTS),
        ("/v1/video/visitor-events", VISITOR_EVENTS),
    ],
)
def test_two_idempotency_keys_are_refused(gateway: Gateway, route: str, content: bytes) -> None:
    """Which key names the object? The first one was used silently."""
    headers = [*gateway.auth().items(), ("Idempotency-Key", "k-a"), ("Idempotency-Key", "k-b")]

    resp = gateway.client.post(route, content=content, headers=headers)

    body = assert_problem(resp, 422, "send one Idempotency-Key header, not 2")
    assert body["param"] == "Idempotency-Key"
    assert gateway.landed() == []
