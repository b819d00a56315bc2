"""tenpo's exception hierarchy.

Every error tenpo raises on purpose derives from :class:`TenpoError`::

    TenpoError
    ├── ConfigError      settings are missing or inconsistent (raised at start-up)
    ├── BadInput         a payload, file or argument is invalid; ``reason`` names the problem
    ├── NotFound         a tenant, store, device, key or object does not exist (for the caller)
    ├── Conflict         the request contradicts stored state (e.g. a duplicate code)
    │   └── LedgerConflict   a streamer's commit lost a race with another streamer
    │       └── PartsReclaimed   its pending parts were reclaimed (its lease had expired)
    ├── AuthError        the caller is not authenticated (missing, unknown or revoked key)
    │   └── Forbidden    authenticated, but the key lacks the scope or the tenant
    ├── LakeError        the datalake could not read or write an object
    └── BusError         the event bus could not publish, fetch or acknowledge

Domain code raises these; only the HTTP and CLI adapters turn them into problem JSON or
exit codes (``http_status`` is the status a route should answer with).
"""

from __future__ import annotations


class TenpoError(Exception):
    """Base of every error tenpo raises on purpose."""

    http_status = 500
    title = "Internal error"

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class ConfigError(TenpoError):
    """Settings are missing or inconsistent."""

    title = "Configuration error"


class BadInput(TenpoError):
    """A payload, file or argument is invalid."""

    http_status = 422
    title = "Invalid input"


class NotFound(TenpoError):
    """The requested entity does not exist, or is not visible to the caller."""

    http_status = 404
    title = "Not found"


class Conflict(TenpoError):
    """The request contradicts stored state."""

    http_status = 409
    title = "Conflict"


class LedgerConflict(Conflict):
    """A streamer's ledger commit contradicts what another streamer committed meanwhile.

    The transaction was rolled back; the batch's events stay unacknowledged, so the bus
    delivers them again and they load once (or are skipped as already loaded).
    """

    title = "Streamer ledger conflict"


class PartsReclaimed(LedgerConflict):
    """The pending parts a streamer tried to commit were reclaimed by another streamer,
    which took the owner for dead (its lease had expired) and deleted their files."""

    title = "Streamer parts reclaimed"


class AuthError(TenpoError):
    """The caller is not authenticated."""

    http_status = 401
    title = "Unauthorized"


class Forbidden(AuthError):
    """The caller is authenticated but not allowed to do this."""

    http_status = 403
    title = "Forbidden"


class LakeError(TenpoError):
    """The datalake could not read or write an object."""

    http_status = 503
    title = "Datalake unavailable"


class BusError(TenpoError):
    """The event bus could not publish, fetch or acknowledge."""

    http_status = 503
    title = "Event bus unavailable"
