"""The read API application: stores and their KPIs from the datamart, per caller's tenant."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from tenpo.api._admin_routes import admin_router
from tenpo.api._alert_routes import alert_router
from tenpo.api._auth import (
    FastRefusal,
    KnownCredentials,
    RateLimiter,
    SessionSigner,
    UserCache,
    trusted_networks,
)
from tenpo.api._budget_routes import budget_router
from tenpo.api._dashboard import mount_dashboard
from tenpo.api._devices import router as devices_router
from tenpo.api._forecast_routes import forecast_router
from tenpo.api._initiative_routes import initiative_router
from tenpo.api._kpi_fast import KpiFastPath
from tenpo.api._ml_routes import ml_router
from tenpo.api._openapi import install_openapi
from tenpo.api._problems import install_problem_handlers
from tenpo.api._routes import router
from tenpo.api._session_routes import router as session_router
from tenpo.api._staff_routes import staff_router
from tenpo.api._state import ApiState
from tenpo.api._video_routes import video_router
from tenpo.control.auth import Authenticator
from tenpo.core.errors import ConfigError
from tenpo.core.settings import DEV_SESSION_SECRET, Settings
from tenpo.datamart import ensure_schema, get_engine
from tenpo.datamart.aread import AsyncKpiReader, is_postgres
from tenpo.lake import Lake

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    control: Authenticator | None = None,
    lake: Lake | None = None,
) -> FastAPI:
    """The read API over the datamart ``engine`` (default: ``settings.datamart_db_url``).

    API keys and dashboard users are checked by ``control`` (default: the control plane at
    ``settings.control_db_url``, opened now and disposed when the app shuts down). The lake
    (video audits) is ``lake``, else ``settings.lake_root`` opened on first use. Raises
    :class:`ConfigError` in production when ``session_secret`` is the placeholder.
    """
    _check_session_secret(settings)
    datamart = engine if engine is not None else get_engine(settings.datamart_db_url)
    ensure_schema(datamart)
    owned = None
    if control is None:
        from tenpo.control import ControlPlane

        control = owned = ControlPlane.open(
            settings.control_db_url, auth_cache_ttl=settings.auth_cache_seconds
        )

    # PostgreSQL: the KPI hot path reads through pooled asyncpg connections (datamart.aread).
    kpi_reader = AsyncKpiReader(datamart) if is_postgres(datamart) else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        logger.info("read API up (datamart %s)", datamart.url.render_as_string())
        if kpi_reader is not None:
            # Warm before the server reports ready: the pool open, its statement prepared.
            await kpi_reader.start()
        # What start-up made (modules, routes, models, the pool: ~240k objects) is kept out
        # of the cyclic collector while serving: a full collection over it paused the event
        # loop 270-470 ms every few thousand requests (gc callbacks under the KPI bench's
        # load), the whole of that run's p99. Collections then scan only what requests
        # allocate. Collected first, so start-up's garbage is not kept for good.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # startup's objects are collectable again once the app is done
        if kpi_reader is not None:
            await kpi_reader.close()
        if owned is not None:
            owned.dispose()

    app = FastAPI(
        title="tenpo read API",
        version=_version(),
        description="Stores and their KPIs for the caller's tenant (API key with scope `read`, "
        "or a dashboard session from `POST /v1/auth/login`). Every error is an RFC 9457 "
        'problem (`application/problem+json`). Money is a decimal string (`"12345.00"`, yen); '
        "ratios are numbers, `null` when their denominator is zero.",
        lifespan=lifespan,
    )
    app.state.api = ApiState(
        settings=settings,
        datamart=datamart,
        control=control,
        kpi_reader=kpi_reader,
        sessions=SessionSigner(settings.session_secret, settings.session_ttl_s),
        user_cache=UserCache(),
        rate_limiter=RateLimiter(settings.api_rate_per_s, settings.api_rate_burst),
        # Password guessing: a handful of attempts per client address, then one every 6 s;
        # and per account (guessing from many addresses), then one every 30 s.
        login_limiter=RateLimiter(1 / 6, 10),
        account_limiter=RateLimiter(1 / 30, 10),
        known_credentials=KnownCredentials(),
        trusted_proxies=trusted_networks(settings.trusted_proxies),
        lake_opened=lake,
    )
    # The plain KPI read (PostgreSQL, cached key) is answered below the routing; everything
    # else, refusals included, goes on to the routes (tenpo.api._kpi_fast).
    app.add_middleware(KpiFastPath)
    app.add_middleware(FastRefusal)  # a 429 before routing: refusals cost less than answers
    install_problem_handlers(app)
    app.include_router(router)
    app.include_router(session_router)
    app.include_router(devices_router)
    app.include_router(ml_router)
    app.include_router(forecast_router)
    app.include_router(alert_router)
    app.include_router(video_router)
    app.include_router(admin_router)
    app.include_router(initiative_router)
    app.include_router(budget_router)
    app.include_router(staff_router)
    mount_dashboard(app)
    install_openapi(app)
    return app


def _check_session_secret(settings: Settings) -> None:
    if settings.environment != "production":
        return
    secret = settings.session_secret
    if secret == DEV_SESSION_SECRET or len(secret) < 32 or "change" in secret.lower():
        raise ConfigError(
            "TENPO_SESSION_SECRET must be set to a random value of at least 32 characters in "
            "production (e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )


def _version() -> str:
    try:
        return version("tenpo")
    except PackageNotFoundError:
        return "0"
