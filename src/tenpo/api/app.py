"""The read API application: stores and their KPIs from the datamart, per caller's tenant."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from tenpo.api._problems import install_problem_handlers
from tenpo.api._routes import Authenticator, router
from tenpo.core.settings import Settings
from tenpo.datamart import ensure_schema, get_engine

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    control: Authenticator | None = None,
) -> FastAPI:
    """The read API over the datamart ``engine`` (default: ``settings.datamart_db_url``).

    API keys are checked by ``control`` (default: the control plane at
    ``settings.control_db_url``, opened now and disposed when the app shuts down).
    """
    datamart = engine if engine is not None else get_engine(settings.datamart_db_url)
    ensure_schema(datamart)
    owned = None
    if control is None:
        from tenpo.control import ControlPlane

        control = owned = ControlPlane.open(settings.control_db_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        logger.info("read API up (datamart %s)", datamart.url.render_as_string())
        yield
        if owned is not None:
            owned.dispose()

    app = FastAPI(
        title="tenpo read API",
        version=_version(),
        description="Stores and their KPIs for the caller's tenant. Every error is an RFC 9457 "
        'problem (`application/problem+json`). Money is a decimal string (`"12345.00"`, yen); '
        "ratios are numbers, `null` when their denominator is zero.",
        lifespan=lifespan,
    )
    app.state.datamart = datamart
    app.state.control = control
    app.state.max_kpi_days = settings.api_max_kpi_days
    install_problem_handlers(app)
    app.include_router(router)
    return app


def _version() -> str:
    try:
        return version("tenpo")
    except PackageNotFoundError:
        return "0"
