"""Dagster resources: the one place pipelines get settings, the lake and the warehouse from.

The warehouse's engine (DuckDB or Spark, ``TENPO_ENGINE``) is chosen here, through
:func:`tenpo.warehouse.open_warehouse`: assets receive a warehouse and never test the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import Engine, make_url

from tenpo.core.settings import Settings
from tenpo.lake.base import Lake, open_lake
from tenpo.warehouse.catalog import BaseWarehouse, open_warehouse

if TYPE_CHECKING:
    from tenpo.alerts import Rule
    from tenpo.control import ControlPlane

__all__ = ["TenpoResource"]


class TenpoResource(ConfigurableResource):
    """tenpo's settings for assets; builds the lake and a warehouse when an asset asks.

    Unset fields fall back to the environment (``TENPO_*``, ``tenpo.toml``) when an asset
    runs, never at import, so ``dagster dev`` picks up the same settings as the CLI.
    """

    data_dir: str | None = Field(default=None, description="tenpo data directory (TENPO_DATA_DIR).")
    lake_url: str | None = Field(
        default=None, description="Datalake root; default {data_dir}/lake."
    )
    datamart_url: str | None = Field(default=None, description="Datamart SQLAlchemy URL.")
    control_url: str | None = Field(
        default=None, description="Control-plane SQLAlchemy URL (alert rules, stores)."
    )
    _settings: Settings | None = PrivateAttr(default=None)
    _lake: Lake | None = PrivateAttr(default=None)
    engine: str | None = Field(
        default=None, description="Warehouse engine of the mart assets: duckdb or spark."
    )
    spark_master: str | None = Field(
        default=None, description="Spark master URL for engine=spark (default local[*])."
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> TenpoResource:
        """A resource reproducing ``settings``' storage locations."""
        return cls(
            data_dir=str(settings.data_dir.resolve()),
            lake_url=settings.lake_url,
            datamart_url=settings.datamart_url,
            control_url=settings.control_url,
            engine=settings.engine,
            spark_master=settings.spark_master,
        )

    def get_settings(self) -> Settings:
        """The settings this resource stands for (explicit fields over the environment),
        read once per resource instance (Dagster makes one per run and process)."""
        if self._settings is None:
            self._settings = self._read_settings()
        return self._settings

    def _read_settings(self) -> Settings:
        overrides: dict[str, Any] = {
            k: v
            for k, v in {
                "data_dir": self.data_dir,
                "lake_url": self.lake_url,
                "datamart_url": self.datamart_url,
                "control_url": self.control_url,
                "engine": self.engine,
                "spark_master": self.spark_master,
            }.items()
            if v is not None
        }
        return Settings(**overrides)

    def open_lake(self) -> Lake:
        """The datalake, opened once per resource instance (a lake holds no connection)."""
        if self._lake is None:
            self._lake = open_lake(self.get_settings().lake_root)
        return self._lake

    def datamart_engine(self) -> Engine:
        """The datamart's engine, one per URL for the process (:func:`datamart.get_engine`)."""
        from tenpo.datamart import get_engine

        return get_engine(self.get_settings().datamart_db_url)

    def store_timezones(self) -> list[tuple[str, str, str]]:
        """(tenant_id, store_id, timezone) of every store in the control plane.

        Empty when there is no control plane yet (an embedded SQLite file not created): the
        jobs then use the default timezone.
        """
        with self.control_plane() as control:
            if control is None:
                return []
            return [
                (tenant.tenant_id, store.store_id, store.timezone)
                for tenant in control.list_tenants()
                for store in control.list_stores(tenant.tenant_id)
            ]

    @contextmanager
    def control_plane(self) -> Iterator[ControlPlane | None]:
        """The control plane, disposed on exit; None when there is none yet (an embedded
        SQLite file not created)."""
        from tenpo.control import ControlPlane

        settings = self.get_settings()
        url = make_url(settings.control_db_url)
        if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
            yield None
            return
        control = ControlPlane.open(settings.control_db_url, migrate=False)
        try:
            yield control
        finally:
            control.dispose()

    def alert_rules(
        self, legacy: list[dict[str, Any]] | None = None
    ) -> tuple[list[Rule], dict[tuple[str, str], tuple[str, str]]]:
        """Every tenant's alert rules and their webhook targets, from the control plane,
        after adopting ``legacy`` rows (a datamart's old ``dm_alert_rules``) into it.

        Empty when there is no control plane yet (an embedded SQLite file not created).
        """
        with self.control_plane() as control:
            if control is None:
                return [], {}
            if legacy:
                control.adopt_legacy_rules(legacy)
            return [r for r, _ in control.alert_rules()], control.webhook_targets()

    def open_warehouse(self) -> BaseWarehouse:
        """A fresh warehouse over the lake on the configured engine; close it when done."""
        return open_warehouse(self.get_settings())
