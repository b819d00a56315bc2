"""The ML marts in the datamart: store clusters, targets and industry benchmarks.

Kept in their own :class:`~sqlalchemy.MetaData` (created by :func:`ensure_ml_schema` on first
use), so adding them touches none of the KPI tables. Each export replaces the rows of one
"as of" date (``business_date``, the last day of the feature window); readers return the
latest date. Target reads are scoped to one tenant; benchmark reads return aggregates only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tenpo.core.errors import BadInput, ConfigError
from tenpo.core.settings import Settings
from tenpo.datamart._engine import get_engine
from tenpo.datamart._memo import SchemaMemo
from tenpo.datamart.schema import column_type
from tenpo.ml.tables import ML_KEYS, ML_SCHEMAS

__all__ = [
    "BenchmarkRecord",
    "StoreCluster",
    "MIN_PEERS_SHOWN",
    "TargetRecord",
    "benchmark_periods",
    "ensure_ml_schema",
    "export_ml",
    "ml_metadata",
    "read_benchmarks",
    "store_targets",
    "visible_targets",
]

logger = logging.getLogger(__name__)

ml_metadata = sa.MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s"})


def _table(name: str) -> sa.Table:
    keys = ML_KEYS[name]
    return sa.Table(
        name,
        ml_metadata,
        *(
            sa.Column(
                f.name,
                column_type(f.name, f.type, f.name in keys),
                primary_key=f.name in keys,
                nullable=f.name not in keys,
            )
            for f in ML_SCHEMAS[name]
        ),
    )


mart_store_clusters = _table("mart_store_clusters")
mart_store_targets = _table("mart_store_targets")
mart_benchmarks = _table("mart_benchmarks")
sa.Index(None, mart_store_clusters.c.business_date)
sa.Index(None, mart_store_targets.c.business_date)
sa.Index(None, mart_benchmarks.c.industry, mart_benchmarks.c.period)

_TABLES = {t.name: t for t in (mart_store_clusters, mart_store_targets, mart_benchmarks)}


def ensure_ml_schema(engine: Engine) -> None:
    """Create the ML tables missing on ``engine``; refuse tables of an older layout."""
    _schema.ensure(engine)


def _create_ml_schema(engine: Engine) -> None:
    _drop_leaky_benchmarks(engine)
    _drop_older_layouts(engine)
    ml_metadata.create_all(engine)
    inspector = sa.inspect(engine)
    for table in ml_metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        if missing := [c.name for c in table.columns if c.name not in present]:
            raise ConfigError(
                f"datamart table {table.name} lacks columns {missing}: drop it and "
                "re-run the ML assets to rebuild it",
                table=table.name,
            )


_schema = SchemaMemo([t.name for t in ml_metadata.sorted_tables], _create_ml_schema)


def _drop_older_layouts(engine: Engine) -> None:
    # The ML tables hold derived data only (the lake keeps the marts; the next ML run or
    # `datamart_ml` writes them again): a table of an older layout is dropped and rebuilt.
    inspector = sa.inspect(engine)
    for table in ml_metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        if missing := [c.name for c in table.columns if c.name not in present]:
            logger.warning(
                "datamart: %s lacks %s (older layout): dropped, the next export rebuilds it",
                table.name,
                missing,
            )
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE {table.name}"))


def _drop_leaky_benchmarks(engine: Engine) -> None:
    # The former release (exact counts, mean, exact quantiles) let a tenant recover other
    # stores' figures (issue 11): its rows must not stay readable. They are derived data;
    # the next ML run writes the new release.
    inspector = sa.inspect(engine)
    if not inspector.has_table(mart_benchmarks.name):
        return
    columns = {c["name"] for c in inspector.get_columns(mart_benchmarks.name)}
    if "mean" in columns or "stores_band" not in columns:
        logger.warning("datamart: dropping mart_benchmarks of the former (leaky) release")
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {mart_benchmarks.name}"))


def export_ml(settings: Settings, table: str, as_of: date, rows: pa.Table) -> int:
    """Replace ``table``'s rows of ``as_of`` with ``rows`` in one transaction; rows written."""
    if table not in _TABLES:
        raise BadInput(f"unknown ML datamart table {table!r}; expected one of {sorted(_TABLES)}")
    target = _TABLES[table]
    if set(rows.column_names) != set(ML_SCHEMAS[table].names):
        raise BadInput(f"{table} rows do not match its schema ({sorted(rows.column_names)})")
    records = rows.select(ML_SCHEMAS[table].names).cast(ML_SCHEMAS[table]).to_pylist()
    if any(r["business_date"] != as_of for r in records):
        raise BadInput(f"{table} rows must all have business_date {as_of}")
    engine = get_engine(settings.datamart_db_url)
    ensure_ml_schema(engine)
    with engine.begin() as conn:
        removed = conn.execute(target.delete().where(target.c.business_date == as_of)).rowcount
        if records:
            conn.execute(target.insert(), records)
    logger.info("datamart %s %s: replaced %d rows with %d", table, as_of, removed, len(records))
    return len(records)


@dataclass(frozen=True)
class StoreCluster:
    """The cluster a store belongs to, as of a date."""

    business_date: date
    cluster_id: str
    description: str
    k: int
    silhouette: float | None
    features: list[str]
    imputed: list[str]


@dataclass(frozen=True)
class TargetRecord:
    """One KPI target of a store, with the peers and figures behind it."""

    kpi: str
    actual: float | None
    target: float | None
    headroom: float | None
    quantile: float
    peer_basis: str
    peers_n: int
    peer_p25: float | None
    peer_median: float | None
    peer_target: float | None
    uplift_per_day: Decimal | None
    uplift_share: float | None
    is_primary: bool
    explanation: str
    peers: dict[str, Any]


MIN_PEERS_SHOWN = 5
"""Peer statistics are shown only over this many peers, unless the caller reads them all."""


def _may_see_peers(target: TargetRecord, readable: frozenset[str] | None) -> bool:
    if target.peers_n >= MIN_PEERS_SHOWN:
        return True
    # Fewer peers: 2 × median − own is the other store's figure. Only a caller who may read
    # every peer anyway (its own tenant's, all assigned to it) learns nothing from them.
    if target.peers.get("other_tenants_stores", 1) != 0:
        return False
    return readable is None or set(target.peers.get("stores", [])) <= readable


def visible_targets(
    targets: list[TargetRecord], readable: frozenset[str] | None
) -> list[TargetRecord]:
    """``targets`` as a caller reading ``readable`` stores (None: the whole tenant) may see.

    Peer stores it may not read are not named; a KPI whose peers are fewer than
    :data:`MIN_PEERS_SHOWN` (and not all readable) loses its peer statistics and everything
    computed from them (target, headroom, uplift, the explanation), and so does the
    ``net_sales`` row combining them; no lever is primary then.
    """
    hidden = {t.kpi for t in targets if t.kpi != "net_sales" and not _may_see_peers(t, readable)}
    note = (
        f"peer statistics hidden: fewer than {MIN_PEERS_SHOWN} peers, not all of them "
        "stores you may read"
    )
    out = []
    for t in targets:
        peers = dict(t.peers)
        if readable is not None and "stores" in peers:
            peers["stores"] = [s for s in peers["stores"] if s in readable]
        if t.kpi in hidden or (t.kpi == "net_sales" and hidden):
            t = replace(
                t,
                target=None,
                headroom=None,
                peer_p25=None,
                peer_median=None,
                peer_target=None,
                uplift_per_day=None,
                uplift_share=None,
                explanation=note if t.kpi in hidden else f"{note} ({', '.join(sorted(hidden))})",
            )
        out.append(replace(t, peers=peers, is_primary=t.is_primary and not hidden))
    return out


def store_targets(
    engine: Engine, tenant_id: str, store_id: str, readable: frozenset[str] | None = None
) -> tuple[StoreCluster | None, list[TargetRecord]]:
    """The store's latest cluster and targets (None, [] when none were computed), as a
    caller reading ``readable`` stores may see them (:func:`visible_targets`)."""
    ensure_ml_schema(engine)
    c, t = mart_store_clusters.c, mart_store_targets.c
    with engine.connect() as conn:
        latest = conn.execute(
            sa.select(sa.func.max(t.business_date)).where(
                t.tenant_id == tenant_id, t.store_id == store_id
            )
        ).scalar_one_or_none()
        if latest is None:
            return None, []
        cluster = (
            conn.execute(
                sa.select(mart_store_clusters).where(
                    c.tenant_id == tenant_id, c.store_id == store_id, c.business_date == latest
                )
            )
            .mappings()
            .one_or_none()
        )
        rows = (
            conn.execute(
                sa.select(mart_store_targets)
                .where(t.tenant_id == tenant_id, t.store_id == store_id, t.business_date == latest)
                .order_by(t.kpi)
            )
            .mappings()
            .all()
        )
    info = None
    if cluster is not None:
        info = StoreCluster(
            business_date=cluster["business_date"],
            cluster_id=cluster["cluster_id"],
            description=cluster["description"],
            k=cluster["k"],
            silhouette=cluster["silhouette"],
            features=json.loads(cluster["features"] or "[]"),
            imputed=json.loads(cluster["imputed"] or "[]"),
        )
    targets = [
        TargetRecord(
            kpi=r["kpi"],
            actual=r["actual"],
            target=r["target"],
            headroom=r["headroom"],
            quantile=r["quantile"],
            peer_basis=r["peer_basis"],
            peers_n=r["peers_n"],
            peer_p25=r["peer_p25"],
            peer_median=r["peer_median"],
            peer_target=r["peer_target"],
            uplift_per_day=r["uplift_per_day"],
            uplift_share=r["uplift_share"],
            is_primary=bool(r["is_primary"]),
            explanation=r["explanation"],
            peers=json.loads(r["peers"] or "{}"),
        )
        for r in rows
    ]
    return info, visible_targets(targets, readable)


@dataclass(frozen=True)
class BenchmarkRecord:
    """One benchmark cell: noisy statistics and count bands only when published."""

    period: str
    period_start: date
    period_end: date
    industry: str
    size_band: str
    kpi: str
    stores_band: str | None
    tenants_band: str | None
    published: bool
    suppressed_reason: str | None
    p25: float | None
    median: float | None
    p75: float | None


def benchmark_periods(engine: Engine, industry: str | None = None) -> list[str]:
    """The periods with benchmarks (of ``industry`` when given), latest first."""
    ensure_ml_schema(engine)
    b = mart_benchmarks.c
    query = sa.select(b.period).distinct().order_by(b.period.desc())
    if industry is not None:
        query = query.where(b.industry == industry)
    with engine.connect() as conn:
        return [str(p) for p in conn.execute(query).scalars()]


def read_benchmarks(
    engine: Engine, *, industry: str | None = None, period: str | None = None
) -> tuple[str | None, list[BenchmarkRecord]]:
    """Benchmark cells of ``period`` (default: the latest), of ``industry`` when given."""
    ensure_ml_schema(engine)
    if period is None:
        periods = benchmark_periods(engine, industry)
        if not periods:
            return None, []
        period = periods[0]
    b = mart_benchmarks.c
    where = [b.period == period]
    if industry is not None:
        where.append(b.industry == industry)
    # A period may have been computed on several as-of dates of its week: the latest wins.
    latest = sa.select(sa.func.max(b.business_date)).where(*where).scalar_subquery()
    query = (
        sa.select(mart_benchmarks)
        .where(*where, b.business_date == latest)
        .order_by(b.industry, b.size_band, b.kpi)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return period, [
        BenchmarkRecord(**{k: v for k, v in r.items() if k != "business_date"}) for r in rows
    ]
