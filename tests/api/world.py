"""A small two-tenant world for the API, session and dashboard tests.

Tenant ``t1``: stores ``s1`` (data every day but 2026-10-08), ``s2`` (no counter on
2026-10-07) and ``s3`` (no data). Tenant ``t2``: store ``zz-t2-secret`` whose figures must
never reach ``t1``. Users: a t1 admin, a t1 manager of ``s2`` only, a t2 admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tenpo.control import ControlPlane
from tenpo.core.settings import Settings
from tenpo.datamart import ensure_schema, export_partition, get_engine, sync_stores
from tests.datamart.factory import daily_row, mart_table

START = date(2026, 10, 5)  # a Monday
DAYS = [START + timedelta(days=i) for i in range(7)]
GAP = date(2026, 10, 8)
NO_COUNTER = date(2026, 10, 7)
SECRET_STORE = "zz-t2-secret"
SECRET_SALES = "987654.00"
PASSWORD = "correct horse battery"
USERS = {
    "admin": "admin@t1.example",
    "manager": "manager@t1.example",
    "other": "admin@t2.example",
}


@dataclass
class World:
    settings: Settings
    control: ControlPlane
    t1_key: str
    t2_key: str


def s1_row(day: date) -> dict[str, Any]:
    """s1's daily row: sales grow by 1000 yen a day from 10000."""
    i = (day - START).days
    return daily_row(
        "t1",
        "s1",
        day,
        net_sales=f"{10000 + 1000 * i}.00",
        transactions=10 + i,
        units=20 + i,
        visitors=50 + 2 * i,
        passersby=500 + 10 * i,
    )


def _store(tenant: str, store_id: str, code: str, industry: str, region: str) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "store_id": store_id,
        "code": code,
        "name": f"Store {code}",
        "industry": industry,
        "region": region,
        "timezone": "Asia/Tokyo",
        "floor_area_m2": 100,
    }


def _hourly_table(engine: sa.Engine) -> sa.Table:
    """The datamart's hourly mart (created by the datamart schema when it has one)."""
    if not sa.inspect(engine).has_table("mart_store_hourly"):
        meta = sa.MetaData()
        sa.Table(
            "mart_store_hourly",
            meta,
            sa.Column("tenant_id", sa.String(64), primary_key=True),
            sa.Column("store_id", sa.String(64), primary_key=True),
            sa.Column("business_date", sa.Date, primary_key=True),
            sa.Column("hour", sa.Integer, primary_key=True),
            sa.Column("net_sales", sa.String(24)),
            sa.Column("transactions", sa.BigInteger),
            sa.Column("visitors", sa.BigInteger),
            sa.Column("passersby", sa.BigInteger),
            sa.Column("has_pos", sa.Boolean),
            sa.Column("has_counter", sa.Boolean),
        )
        meta.create_all(engine)
    return sa.Table("mart_store_hourly", sa.MetaData(), autoload_with=engine)


def build(folder: Path, datamart_url: str | None = None, control_url: str | None = None) -> World:
    """Control plane and datamart (SQLite under ``folder`` unless their URLs are given)."""
    settings = Settings(
        data_dir=folder / "data",
        datamart_url=datamart_url or f"sqlite:///{folder / 'datamart.db'}",
        control_url=control_url or f"sqlite:///{folder / 'control.db'}",
    )
    control = ControlPlane.open(settings.control_db_url)
    for tenant in ("t1", "t2"):
        control.create_tenant(tenant, f"Tenant {tenant}")
    stores = [
        ("t1", "s1", "001", "apparel", "kanto"),
        ("t1", "s2", "002", "food", "kansai"),
        ("t1", "s3", "003", "apparel", "kansai"),
        ("t2", SECRET_STORE, "001", "apparel", "kanto"),
    ]
    for tenant, store_id, code, industry, region in stores:
        control.create_store(
            tenant, code, f"Store {code}", industry=industry, region=region, store_id=store_id
        )
    sync_stores(settings, [_store(*s) for s in stores])
    control.create_user("t1", USERS["admin"], PASSWORD, "tenant_admin")
    control.create_user("t1", USERS["manager"], PASSWORD, "store_manager", ["s2"])
    control.create_user("t2", USERS["other"], PASSWORD, "tenant_admin")
    for day in DAYS:
        rows = [
            daily_row(
                "t1",
                "s2",
                day,
                net_sales="5000.00",
                transactions=5,
                units=5,
                visitors=None if day == NO_COUNTER else 40,
                passersby=None if day == NO_COUNTER else 400,
                has_counter=day != NO_COUNTER,
            ),
            daily_row("t2", SECRET_STORE, day, net_sales=SECRET_SALES),
        ]
        if day != GAP:
            rows.append(s1_row(day))
        export_partition(settings, "mart_store_daily", day, mart_table(rows))
    engine = get_engine(settings.datamart_db_url)
    ensure_schema(engine)
    hourly = _hourly_table(engine)
    records = []
    for day in DAYS:
        if day == GAP:
            continue
        for hour in (10, 11, 12):
            records.append(_hourly("t1", "s1", day, hour, hourly))
        records.append(_hourly("t2", SECRET_STORE, day, 10, hourly))
    with engine.begin() as conn:
        conn.execute(hourly.delete())
        conn.execute(hourly.insert(), records)
    t1_key = control.create_api_key("t1", "dash", ["read"])[1]
    t2_key = control.create_api_key("t2", "dash", ["read"])[1]
    return World(settings=settings, control=control, t1_key=t1_key, t2_key=t2_key)


def _hourly(tenant: str, store: str, day: date, hour: int, table: sa.Table) -> dict[str, Any]:
    """An hourly row: 1000 yen × (hour − 9), 2 transactions, 10 visitors, 100 passers-by."""
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "store_id": store,
        "business_date": day,
        "hour": hour,
        "utc_offset_s": 9 * 3600,
        "net_sales": Decimal(1000 * (hour - 9)),
        "net_sales_incl_tax": Decimal(1100 * (hour - 9)),
        "transactions": 2,
        "units": 3,
        "atv": 500.0 * (hour - 9),
        "upt": 1.5,
        "visitors": 10,
        "passersby": 100,
        "capture_rate": 0.1,
        "conversion_rate": 0.2,
        "sales_per_visitor": 100.0 * (hour - 9),
        "has_pos": True,
        "has_counter": True,
        "visitors_source": "counter",
    }
    columns = set(table.c.keys())
    row = {k: v for k, v in values.items() if k in columns}
    if isinstance(table.c["net_sales"].type, sa.String):
        row["net_sales"] = f"{row['net_sales']:.2f}"
        if "net_sales_incl_tax" in row:
            row["net_sales_incl_tax"] = f"{row['net_sales_incl_tax']:.2f}"
    return row
