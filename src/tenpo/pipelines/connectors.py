"""Pull connectors on a schedule: every vendor plugin with a ``connector`` module is pulled
into the lake, like ``tenpo pos pull <vendor>``, for the tenant named by ``{KEY}_TENANT``
(e.g. ``SMAREGI_TENANT``) with the connector's credentials from the environment.

The job lands pages; the streamer loads them and its sensor refreshes the marts. A vendor
without ``{KEY}_TENANT`` set is skipped (logged), so the schedule can run everywhere.
"""

# No `from __future__ import annotations`: Dagster inspects the op's annotations.
import importlib
import os
from typing import Any

from dagster import (
    DefaultScheduleStatus,
    OpExecutionContext,
    ScheduleDefinition,
    job,
    op,
)

from tenpo.pipelines.resources import TenpoResource

__all__ = ["PULL_JOB", "pull_connectors_job", "pull_connectors_schedule", "pull_vendors"]

PULL_JOB = "pull_connectors"


def pull_vendors(environ: Any = None) -> dict[str, tuple[str, str]]:
    """Vendor key → (connector module, tenant) of every connector configured in ``environ``."""
    from tenpo.pos.vendors import built_in

    env = os.environ if environ is None else environ
    return {
        key: (str(v.connector), env[f"{key.upper()}_TENANT"])
        for key, v in built_in().items()
        if v.connector and env.get(f"{key.upper()}_TENANT")
    }


@op(description="Pull every configured vendor connector into the lake (one pull each).")
def pull_connectors(context: OpExecutionContext, tenpo: TenpoResource) -> dict[str, int]:
    """Run each configured connector once; the transactions it landed, by vendor."""
    from tenpo.bus import open_bus
    from tenpo.lake.landing import LandingZone

    configured = pull_vendors()
    if not configured:
        context.log.info("no connector configured (set e.g. SMAREGI_TENANT)")
        return {}
    settings = tenpo.get_settings()
    lake = tenpo.open_lake()
    bus = open_bus(settings)
    pulled: dict[str, int] = {}
    try:
        landing = LandingZone(lake, bus, settings.default_timezone)
        for key, (module_name, tenant) in configured.items():
            report = importlib.import_module(module_name).run_pull(
                tenant, lake, landing, environ=os.environ
            )
            pulled[key] = report.transactions
            context.log.info(
                f"{key} → {tenant}: {report.windows} windows, {report.pages} pages, "
                f"{report.transactions} transactions, {report.landed} new objects"
            )
    finally:
        bus.close()
    return pulled


@job(name=PULL_JOB, description="Pull the vendors tenpo fetches from their APIs.")
def pull_connectors_job() -> None:
    """The pull job: one op, every configured connector."""
    pull_connectors()


def pull_connectors_schedule(
    every_minutes: int = 15, *, running: bool | None = None
) -> ScheduleDefinition:
    """Run the pull job every ``every_minutes``; on by default when a connector is set up."""
    on = bool(pull_vendors()) if running is None else running
    return ScheduleDefinition(
        name=f"{PULL_JOB}_every_{every_minutes}_min",
        job=pull_connectors_job,
        cron_schedule=f"*/{every_minutes} * * * *",
        default_status=DefaultScheduleStatus.RUNNING if on else DefaultScheduleStatus.STOPPED,
    )
