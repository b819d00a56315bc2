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

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks

from tenpo.bus import open_bus
from tenpo.control import ControlPlane
from tenpo.core.settings import Settings
from tenpo.gateway import create_app
from tenpo.lake import open_lake
from tests.gateway.conftest import Keys

load_all_checks()
ALL_CHECKS = CHECKS.get_all()
EXAMPLES = 30
"""Examples per operation: bounded, so the test takes seconds."""


@schemathesis.serializer("application/x-ndjson", "text/csv; charset=cp932", "video/mp4")
def _as_bytes(_ctx: Any, value: Any) -> bytes:
    """Bodies documented as bytes (JSON Lines, CP932 CSV, MP4) are sent as generated."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


def _documented_example(operation: Any) -> Any:
    body = operation.definition.raw.get("requestBody", {}).get("content", {})
    return body.get("application/json", {}).get("schema", {}).get("example")


WITHOUT_POSITIVE = [c for c in ALL_CHECKS if c.__name__ != "positive_data_acceptance"]


def _schema_says_all(case: Any) -> bool:
    """Whether the OpenAPI schema of this body says all the gateway checks (so schema-valid
    data must be accepted): the JSON bodies. A CSV or JSON Lines body is documented as bytes
    (its format is no JSON Schema), and one sales operation takes vendor_a CSV or vendor_b
    JSON by the path: for those, "schema-valid" bytes may rightly be a 400/415."""
    if case.media_type != "application/json":
        return case.body is None  # GETs: path and query are fully described
    vendor = (case.path_parameters or {}).get("vendor")
    return case.operation.path != "/v1/pos/{vendor}/sales" or vendor == "vendor_b"


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
        example = _documented_example(operation)
        if example is not None:  # the documented example body is accepted, every check holds
            params = {"vendor": "vendor_b"} if "{vendor}" in operation.path else {}
            case = operation.Case(
                body=example, media_type="application/json", path_parameters=params
            )
            response = case.call_and_validate(headers=headers, checks=ALL_CHECKS)
            assert response.status_code == 202, response.text
            statuses[operation.label][202] += 1
    assert statuses["POST /v1/pos/{vendor}/sales"][202] >= 1, statuses
    assert statuses["POST /v1/iot/events"][202] >= 1, statuses
    assert sum(statuses["GET /v1/pos/batches/{object_id}"].values()) >= EXAMPLES // 2, statuses
    assert not any(s >= 500 for counts in statuses.values() for s in counts), statuses
