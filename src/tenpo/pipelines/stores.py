"""The store dimension asset: ``dm_stores``, the store list the read API serves.

Not partitioned: each run copies every tenant's stores from the control plane into the
datamart in one transaction (tenants and stores gone from the control plane disappear from
it). Every run that exports marts includes it — ``tenpo jobs materialize``, the
``partitions_changed`` sensor, the daily schedule and the demo — so a store registered with
``tenpo admin`` (or the admin API) is served by the next run whichever path started it.
"""

# No `from __future__ import annotations`: Dagster inspects the asset function's annotations.
import logging
from pathlib import Path

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset
from sqlalchemy.engine import make_url

from tenpo.pipelines.kpis import WRITER_TAG
from tenpo.pipelines.resources import TenpoResource

__all__ = ["DATAMART_STORES_KEY", "store_assets"]

log = logging.getLogger(__name__)

DATAMART_STORES_KEY = "datamart_stores"


def store_assets() -> list[AssetsDefinition]:
    """``datamart_stores``: the control plane's stores copied into ``dm_stores``."""

    @asset(
        name=DATAMART_STORES_KEY,
        group_name="datamart",
        kinds={"sql"},
        op_tags=WRITER_TAG,
        description="Every tenant's stores from the control plane, copied into dm_stores "
        "(GET /v1/stores).",
    )
    def datamart_stores(context: AssetExecutionContext, tenpo: TenpoResource) -> MaterializeResult:
        # Imported here: the control plane and the datamart are adapters the marts do not need.
        from tenpo.control import ControlPlane
        from tenpo.datamart import sync_stores

        settings = tenpo.get_settings()
        url = make_url(settings.control_db_url)
        if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
            # No control plane at all (marts computed from a copied lake): keep what is there.
            context.log.warning("datamart_stores: no control plane at %s; dm_stores kept", url)
            return MaterializeResult(metadata={"stores": 0, "tenants": 0, "skipped": True})
        control = ControlPlane.open(settings.control_db_url, migrate=False)
        try:
            tenants = [t.tenant_id for t in control.list_tenants()]
            stores = [s for t in tenants for s in control.list_stores(t)]
        finally:
            control.dispose()
        written = sync_stores(
            tenpo.datamart_engine(), stores, tenants=tenants, exclusive=True,
            default_timezone=settings.default_timezone,
        )  # fmt: skip
        context.log.info("datamart_stores: %d stores of %d tenants", written, len(tenants))
        return MaterializeResult(metadata={"stores": written, "tenants": len(tenants)})

    return [datamart_stores]
