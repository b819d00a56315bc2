"""Dashboard users: password hashing (Argon2 through pwdlib) and the user records.

``ControlPlane`` offers ``create_user``, ``authenticate_user``, ``assign_stores``,
``get_user`` and ``list_users`` on top of these helpers. A user belongs to one tenant and
has one role: ``tenant_admin`` sees every store of the tenant, ``store_manager`` only the
stores assigned to it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pwdlib import PasswordHash

from tenpo.core.errors import BadInput

ROLES: frozenset[str] = frozenset({"tenant_admin", "store_manager"})
"""Roles a user can hold."""

MIN_PASSWORD_LEN = 10
MAX_PASSWORD_LEN = 256
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


@lru_cache(maxsize=1)
def hasher() -> PasswordHash:
    """The process-wide password hasher (Argon2id with pwdlib's recommended parameters)."""
    return PasswordHash.recommended()


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash to verify against when the email is unknown, so timing does not reveal it."""
    return hasher().hash("tenpo-no-such-user-dummy-password")


def normalize_email(email: str) -> str:
    """The email stripped and lower-cased; :class:`BadInput` when it is not an address."""
    cleaned = email.strip().lower() if isinstance(email, str) else ""
    if len(cleaned) > 254 or not _EMAIL.match(cleaned):
        raise BadInput(f"invalid email address {email!r}", param="email")
    return cleaned


def check_role(role: str) -> str:
    """``role`` when it is one of :data:`ROLES`; :class:`BadInput` otherwise."""
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}; expected one of {', '.join(sorted(ROLES))}")
    return role


def check_password(password: str) -> str:
    """``password`` when long enough (and not absurdly long); :class:`BadInput` otherwise."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LEN:
        raise BadInput(f"a password needs at least {MIN_PASSWORD_LEN} characters")
    if len(password) > MAX_PASSWORD_LEN:
        raise BadInput(f"a password may hold at most {MAX_PASSWORD_LEN} characters")
    return password
