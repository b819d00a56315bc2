"""What one read-API app holds for its requests: connections, signers, caches and limiters.

:func:`tenpo.api.create_app` builds one :class:`ApiState` and keeps it at ``app.state.api``;
nothing else is put on ``app.state``. Routes declare what they use through the aliases of
:mod:`tenpo.api.deps`; the auth layer and its middleware read it with :func:`api_state`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import TYPE_CHECKING, cast

from starlette.applications import Starlette

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from tenpo.api._auth import (
        KnownCredentials,
        RateLimiter,
        SessionSigner,
        UserCache,
        UserDirectory,
    )
    from tenpo.control.auth import Authenticator
    from tenpo.core.settings import Settings
    from tenpo.datamart.aread import AsyncKpiReader
    from tenpo.lake import Lake

__all__ = ["ApiState", "api_state"]


@dataclass(eq=False)
class ApiState:
    """The read API's process-wide objects, opened once by ``create_app``.

    The limiters and caches are plain attributes so a test can swap one for a stricter one.
    """

    settings: Settings
    datamart: Engine
    control: Authenticator
    """The control plane (or, in tests, an object that only authenticates)."""
    kpi_reader: AsyncKpiReader | None
    """PostgreSQL only: the KPI route's async read path (``tenpo.datamart.aread``)."""
    sessions: SessionSigner
    user_cache: UserCache
    rate_limiter: RateLimiter
    """Per API key or user, on every authenticated request."""
    login_limiter: RateLimiter
    """Login attempts per client address."""
    account_limiter: RateLimiter
    """Failed logins per account (guessing from many addresses)."""
    known_credentials: KnownCredentials
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]
    lake_opened: Lake | None = None
    """The lake, when given to ``create_app``; otherwise opened on first use."""
    _lake_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def users(self) -> UserDirectory:
        """The control plane as the directory of dashboard users (a test double that only
        authenticates API keys is never asked: no session can be issued without it)."""
        return cast("UserDirectory", self.control)

    @property
    def lake(self) -> Lake:
        """The lake at ``settings.lake_root``, opened once (on first use: most routes never
        read it, and opening a local lake creates its folder)."""
        if self.lake_opened is None:
            with self._lake_lock:
                if self.lake_opened is None:
                    from tenpo.lake import open_lake

                    self.lake_opened = open_lake(self.settings.lake_root)
        return self.lake_opened


def api_state(app: Starlette) -> ApiState:
    """The :class:`ApiState` of a read-API ``app`` (``request.app``, ``scope["app"]``)."""
    state: ApiState = app.state.api
    return state
