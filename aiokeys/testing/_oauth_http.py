"""HTTP side of ``/api/oauth/token`` and ``/api/oauth/revoke``."""

from __future__ import annotations

import json
import math

from aiohttp import hdrs, web

from ._oauth import parse_basic
from ._responses import JSON_TYPE, Renderer, error_body
from ._state import SimState

__all__ = ["answer"]

_NO_STORE = {hdrs.CACHE_CONTROL: "no-store", hdrs.PRAGMA: "no-cache"}


async def answer(
    request: web.Request, state: SimState, renderer: Renderer
) -> web.Response:
    """Route an OAuth request: token, revoke, or an Atlas-shaped 404/405."""
    if request.path not in ("/api/oauth/token", "/api/oauth/revoke"):
        return renderer.error(
            error_body(
                404, "RESOURCE_NOT_FOUND", f"Cannot find resource {request.path}"
            )
        )
    if request.method != "POST":
        return renderer.error(
            error_body(405, None, "Use POST."), headers={hdrs.ALLOW: "POST"}
        )
    if request.path == "/api/oauth/token":
        return await _token(request, state, renderer)
    return await _revoke(request, state, renderer)


def _client(
    request: web.Request, state: SimState, renderer: Renderer
) -> tuple[str | None, web.Response | None]:
    credentials = parse_basic(request.headers.get(hdrs.AUTHORIZATION))
    if credentials is None or not state.tokens.client_ok(*credentials):
        body = error_body(
            401, "INVALID_CLIENT", "The client credentials were not accepted."
        )
        return None, renderer.error(
            body, headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="oauth"'}
        )
    return credentials[0], None


async def _token(
    request: web.Request, state: SimState, renderer: Renderer
) -> web.Response:
    """Client-credentials grant: Basic auth, form ``grant_type``, JSON token."""
    if state.token_bucket is not None:
        wait = state.token_bucket.take()
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            detail = f"Too many token requests. Please retry after {seconds} seconds."
            return renderer.error(
                error_body(429, "RATE_LIMITED", detail),
                headers={hdrs.RETRY_AFTER: str(seconds)},
            )
    client_id, refusal = _client(request, state, renderer)
    if refusal is not None:
        return refusal
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        detail = "grant_type must be client_credentials."
        return renderer.error(
            error_body(
                400, "UNSUPPORTED_GRANT_TYPE", detail, fields=[("grant_type", detail)]
            )
        )
    assert client_id is not None
    token = state.tokens.mint(client_id)
    lifetime = state.tokens.lifetime
    expires_in: float = int(lifetime) if float(lifetime).is_integer() else lifetime
    body = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
    return web.Response(
        status=200, text=json.dumps(body), content_type=JSON_TYPE, headers=_NO_STORE
    )


async def _revoke(
    request: web.Request, state: SimState, renderer: Renderer
) -> web.Response:
    """RFC 7009 revocation: 200 whether or not the token was known."""
    client_id, refusal = _client(request, state, renderer)
    if refusal is not None:
        return refusal
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not token:
        detail = "token is required."
        return renderer.error(
            error_body(400, "INVALID_REQUEST", detail, fields=[("token", detail)])
        )
    state.tokens.revoke(token, client_id)
    return web.Response(status=200, headers=_NO_STORE)
