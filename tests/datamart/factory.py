"""Builders of mart partitions and datamart URLs shared by the datamart and API tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from tenpo.core.settings import Settings
from tenpo.datamart import dispose_engines
from tenpo.warehouse.schemas import MART_STORE_DAILY


def daily_row(
    tenant_id: str,
    store_id: str,
    day: date,
    *,
    net_sales: str | None = "10000.00",
    transactions: int | None = 10,
    units: int | None = 20,
    visitors: int | None = 50,
    passersby: int | None = 500,
    has_counter: bool = True,
    has_pos: bool = True,
) -> dict[str, Any]:
    """A mart_store_daily row whose ratios are computed from its own numbers, as the job does."""
    sales = None if net_sales is None else Decimal(net_sales)

    def ratio(num: Decimal | int | None, den: int | None) -> float | None:
        return float(Decimal(num) / den) if num is not None and den else None

    return {
        "tenant_id": tenant_id,
        "store_id": store_id,
        "business_date": day,
        "net_sales": sales,
        "net_sales_incl_tax": None
        if sales is None
        else (sales * Decimal("1.1")).quantize(Decimal("0.01")),
        "transactions": transactions,
        "units": units,
        "atv": ratio(sales, transactions),
        "upt": ratio(units, transactions),
        "visitors": visitors,
        "passersby": passersby,
        "capture_rate": ratio(visitors, passersby),
        "conversion_rate": ratio(transactions, visitors),
        "sales_per_visitor": ratio(sales, visitors),
        "has_pos": has_pos,
        "has_counter": has_counter,
    }


def mart_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as a partition in the mart's Arrow schema."""
    return pa.Table.from_pylist(rows, schema=MART_STORE_DAILY)


def datamart_settings(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    """Settings whose datamart is SQLite (``request.param == "sqlite"``) or a fresh PostgreSQL."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        settings = settings.model_copy(update={"datamart_url": url})
    yield settings
    # Engines are cached per URL; drop them before the test database is dropped.
    dispose_engines()


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
]


@contextmanager
def temporary_database(backend: str, folder: Path, pg_server_url: str | None) -> Iterator[str]:
    """A URL of an empty datamart: a SQLite file in ``folder`` or a new PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'datamart.db'}"
        return
    assert pg_server_url is not None
    name = f"tenpo_dm_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(pg_server_url).set(database=name)
        yield url.render_as_string(hide_password=False)
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
