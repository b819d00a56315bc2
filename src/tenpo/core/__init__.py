"""Cross-cutting pieces: settings, errors, logging, clock and ids."""

from tenpo.core.errors import (
    AuthError,
    BadInput,
    BusError,
    ConfigError,
    Conflict,
    Forbidden,
    LakeError,
    NotFound,
    TenpoError,
)
from tenpo.core.settings import Settings, get_settings

__all__ = [
    "AuthError",
    "BadInput",
    "BusError",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "LakeError",
    "NotFound",
    "Settings",
    "TenpoError",
    "get_settings",
]
