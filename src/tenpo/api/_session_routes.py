"""Login and logout of dashboard users (a signed session cookie), and who the caller is."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from tenpo.api._auth import SESSION_COOKIE, client_address
from tenpo.api._problems import PROBLEM_JSON
from tenpo.api.deps import Reader, State
from tenpo.api.models import LoginRequest, Me, Problem
from tenpo.control import UserInfo
from tenpo.control.users import normalize_email
from tenpo.core.errors import AuthError, BadInput, NotFound

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/auth", tags=["auth"])
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _secure(request: Request) -> bool:
    """Cookies are ``Secure`` except on loopback, where the dashboard runs over plain HTTP."""
    host = (request.url.hostname or "").lower()
    return not (host in _LOCAL_HOSTS or host.endswith(".localhost"))


def _me(user: UserInfo) -> Me:
    return Me(
        tenant_id=user.tenant_id,
        kind="user",
        user_id=user.user_id,
        email=user.email,
        role=user.role,
        store_ids=list(user.store_ids) if user.role == "store_manager" else None,
    )


_ERRORS: dict[int | str, dict[str, object]] = {
    401: {
        "model": Problem,
        "description": "Wrong email or password.",
        "content": {PROBLEM_JSON: {}},
    },
    429: {"model": Problem, "description": "Too many attempts.", "content": {PROBLEM_JSON: {}}},
}


@router.post("/login", response_model=Me, responses=_ERRORS)
def login(request: Request, response: Response, credentials: LoginRequest, state: State) -> Me:
    """Check the password and set the session cookie (HttpOnly, SameSite=Lax, Secure off
    loopback). Attempts are rate limited per client address (``X-Forwarded-For`` believed
    from ``trusted_proxies`` only) and per account (guessing from many addresses)."""
    state.login_limiter.check(f"login:{client_address(request)}")
    try:
        account = normalize_email(credentials.email)
    except BadInput:
        account = credentials.email.strip().lower()
    # Only failures spend the account's tokens, so its owner is not locked out by logging in.
    state.account_limiter.check(f"account:{account}", spend=False)
    try:
        user = state.users.authenticate_user(credentials.email, credentials.password)
    except AuthError:
        state.account_limiter.acquire(f"account:{account}")
        raise
    response.set_cookie(
        SESSION_COOKIE,
        state.sessions.issue(user),
        max_age=state.sessions.ttl_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.headers["Cache-Control"] = "no-store"
    return _me(user)


@router.post("/logout", status_code=204)
def logout(request: Request, state: State) -> Response:
    """End the session: the user's session version is bumped, so this cookie (and every
    other session of the user) is refused from now on, then clear the cookie. Idempotent;
    needs no valid session."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            user_id, _, _ = state.sessions.verify(token)
        except AuthError:
            user_id = None  # forged or expired: nothing to end
        if user_id is not None:
            try:
                state.users.end_sessions(user_id)
            except NotFound:
                pass  # removed meanwhile: its sessions are over anyway
            state.user_cache.forget(user_id)
        state.known_credentials.forget(token)
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request)
    )
    return response


@router.get("/me", response_model=Me, responses=_ERRORS)
def me(caller: Reader, state: State) -> Me:
    """The caller: the logged-in user, or the API key's tenant."""
    if caller.key_id.startswith("user:"):
        return _me(state.users.get_user(caller.key_id.removeprefix("user:")))
    return Me(tenant_id=caller.tenant_id, kind="api_key")


__all__ = ["router"]
