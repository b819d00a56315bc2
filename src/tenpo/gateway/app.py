"""The ingest gateway's FastAPI application factory.

Connections are injected (tests, the demo, ``tenpo serve all``) or, when omitted, opened from
settings in the lifespan and closed when the app shuts down. Injected ones stay the caller's.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from tenpo.bus.base import EventBus
from tenpo.core.settings import Settings
from tenpo.gateway._pos_fast import PosSalesFastPath
from tenpo.gateway._problems import install_problem_handlers
from tenpo.gateway._routes import GatewayState, Ledger, router
from tenpo.gateway._video import router as video_router
from tenpo.gateway.ingest import ControlPlane, Ingestor
from tenpo.lake.base import Lake
from tenpo.lake.landing import LandingZone

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    control: ControlPlane | None = None,
    lake: Lake | None = None,
    bus: EventBus | None = None,
    ledger: Any = None,
) -> FastAPI:
    """The gateway app; missing ``control``/``lake``/``bus`` are opened from ``settings``.

    ``ledger`` is the streamer's load ledger for batch status (a
    :class:`tenpo.streamer.LoadLedger`); without one it is opened on first use and closed
    when the app shuts down.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as owned:
            opened = getattr(app.state, "gateway", None) is None
            if opened:
                app.state.gateway = await run_in_threadpool(
                    _open_state, settings, control, lake, bus, owned, ledger
                )
            log.info("gateway ready (lake %s)", app.state.gateway.lake.root)
            # Start-up's objects (modules, routes, models, SQLAlchemy) stay out of the cyclic
            # collector while serving, as in the read API: a full collection over them pauses
            # the event loop and every request it holds (the 202s waiting for their round).
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()
                state = app.state.gateway
                if state is not None:
                    await run_in_threadpool(state.ingestor.landing.close)
                    await run_in_threadpool(state.ledger.close)
                if opened:
                    app.state.gateway = None

    app = FastAPI(
        title="tenpo ingest gateway",
        summary="POS, device and visitor-event ingest into the tenpo datalake.",
        version="1",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.add_middleware(PosSalesFastPath)  # the plain POS sales upload, below the routing
    app.include_router(router)
    app.include_router(video_router)
    if control is not None and lake is not None and bus is not None:
        # Fully injected: usable even by a client that does not run the lifespan.
        app.state.gateway = _state(settings, control, lake, bus, ledger)
    return app


def _state(
    settings: Settings, control: ControlPlane, lake: Lake, bus: EventBus, ledger: Any = None
) -> GatewayState:
    # Group commit: concurrent requests share one syncfs and one bus transaction.
    landing = LandingZone(
        lake,
        bus,
        timezone=settings.default_timezone,
        group_commit=True,
        commit_window_s=settings.gateway_commit_window_ms / 1000,
    )
    return GatewayState(
        settings=settings,
        lake=lake,
        bus=bus,
        control=control,
        ingestor=Ingestor(control, landing, _vendor_mappings(settings)),
        ledger=Ledger(settings.streamer_db_url, ledger),
    )


def _vendor_mappings(settings: Settings) -> dict[str, Any]:
    """The declarative POS vendors of ``settings.vendor_mappings_dir`` (or data_dir/vendors)."""
    from tenpo.pos.mapped import load_mappings, mapping_dirs

    return dict(load_mappings(mapping_dirs(settings.data_dir, settings.vendor_mappings_dir)))


def _open_state(
    settings: Settings,
    control: ControlPlane | None,
    lake: Lake | None,
    bus: EventBus | None,
    owned: AsyncExitStack,
    ledger: Any = None,
) -> GatewayState:
    if lake is None:
        from tenpo.lake import open_lake

        lake = open_lake(settings.lake_root)
        owned.callback(lake.close)  # (after the landing zone's checkpoint, below the yield)
    if bus is None:
        from tenpo.bus import open_bus

        bus = open_bus(settings)
        owned.callback(bus.close)
    if control is None:
        from tenpo.control import ControlPlane as SqlControlPlane

        opened = SqlControlPlane.open(
            settings.control_db_url, auth_cache_ttl=settings.auth_cache_seconds
        )
        owned.callback(opened.dispose)
        control = opened
    return _state(settings, control, lake, bus, ledger)
