"""Schemathesis over the ingest gateway's OpenAPI, with every check (issue 11).

Property-based requests (bounded examples) from ``/openapi.json`` go through the real app (its
control plane, lake and bus in a temp dir) with a valid API key; every built-in check runs
(the Python equivalent of ``schemathesis run --checks all``): no 5xx, documented status codes
and content types, responses matching their schemas, bad input rejected, good input accepted,
auth not ignored.
"""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks

from tenpo.bus import open_bus
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings
from tenpo.gateway import create_app
from tenpo.lake import open_lake
from tenpo.pos.vendors import built_in
from tests.gateway.conftest import Keys

load_all_checks()
ALL_CHECKS = CHECKS.get_all()
EXAMPLES = 30
"""Examples per operation: bounded, so the test takes seconds."""


@schemathesis.serializer("application/x-ndjson", "text/csv; charset=cp932", "video/mp4")
def _as_bytes(_ctx: Any, value: Any) -> bytes:
    """Bodies documented as bytes (JSON Lines, CP932 CSV, MP4) are sent as generated."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


def _documented_examples(operation: Any) -> list[tuple[dict[str, str], Any]]:
    """(path parameters, body) of every documented JSON example of ``operation``: the
    schema's ``example``, and on the sales operation one per vendor (``examples``, by key)."""
    body = operation.definition.raw.get("requestBody", {}).get("content", {})
    media = body.get("application/json", {})
    found = [({}, media["schema"]["example"])] if "example" in media.get("schema", {}) else []
    for vendor, example in media.get("examples", {}).items():
        found.append(({"vendor": vendor}, example["value"]))
    return found


WITHOUT_POSITIVE = [c for c in ALL_CHECKS if c.__name__ != "positive_data_acceptance"]


def _schema_says_all(case: Any) -> bool:
    """Whether the OpenAPI schema of this body says all the gateway checks (so schema-valid
    data must be accepted): the JSON bodies. A CSV or JSON Lines body is documented as bytes
    (its format is no JSON Schema). The sales operation takes the ``anyOf`` of the JSON
    vendors' schemas, the vendor in the path: a body is "valid" there when it is valid for
    that vendor's own schema (another vendor's body may rightly be a 400)."""
    if case.media_type != "application/json":
        return case.body is None  # GETs: path and query are fully described
    if case.operation.path != "/v1/pos/{vendor}/sales":
        return True
    vendor = built_in().get((case.path_parameters or {}).get("vendor", ""))
    schema = None if vendor is None else vendor.sales.json_schema
    return schema is not None and jsonschema.Draft202012Validator(schema).is_valid(case.body)


@pytest.fixture(scope="module")
def gateway_app(
    tmp_path_factory: pytest.TempPathFactory, seeded_control_db: tuple[Path, Keys]
) -> Iterator[tuple[Any, Keys]]:
    data = tmp_path_factory.mktemp("schemathesis")
    shutil.copyfile(seeded_control_db[0], data / "control.db")
    s = Settings(data_dir=data, max_body_bytes=64 * 1024, pos_max_body_bytes=64 * 1024)
    control = ControlPlane.open(s.control_db_url)
    control.create_store("acme", "S001", "本店")  # the store of the documented examples
    bus = open_bus(s)
    yield create_app(s, control=control, lake=open_lake(s.lake_root), bus=bus), seeded_control_db[1]
    bus.close()
    control.dispose()


@pytest.fixture(scope="module")
def gateway_schema(gateway_app: tuple[Any, Keys]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", gateway_app[0])


@pytest.fixture(scope="module")
def token(gateway_app: tuple[Any, Keys]) -> str:
    return gateway_app[1].acme


def test_gateway_conforms_to_its_openapi(gateway_schema: Any, token: str) -> None:
    """Every operation, every check. (Driven here rather than by schemathesis' pytest plugin,
    whose lazy fixture loading does not run on pytest 9.)"""
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in gateway_schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /v1/pos/{vendor}/sales", "POST /v1/iot/events", "GET /v1/pos/batches/{object_id}",
    }  # fmt: skip
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    accepted_vendors: set[str] = set()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # as the read API's: CI runs the same cases every time
        )
        def check(case: Any) -> None:
            checks = ALL_CHECKS if _schema_says_all(case) else WITHOUT_POSITIVE
            response = case.call_and_validate(headers=headers, checks=checks)
            statuses[case.operation.label][response.status_code] += 1

        check()
        for params, example in _documented_examples(operation):
            # every documented example body is accepted, every check holds
            case = operation.Case(
                body=example, media_type="application/json", path_parameters=params
            )
            response = case.call_and_validate(headers=headers, checks=ALL_CHECKS)
            assert response.status_code == 202, response.text
            statuses[operation.label][202] += 1
            if params:
                accepted_vendors.add(params["vendor"])
    assert statuses["POST /v1/pos/{vendor}/sales"][202] >= 1, statuses
    json_vendors = {k for k, v in built_in().items() if v.sales.json_schema}
    assert accepted_vendors == json_vendors >= {"vendor_b", "smaregi"}
    assert statuses["POST /v1/iot/events"][202] >= 1, statuses
    assert sum(statuses["GET /v1/pos/batches/{object_id}"].values()) >= EXAMPLES // 2, statuses
    assert not any(s >= 500 for counts in statuses.values() for s in counts), statuses
