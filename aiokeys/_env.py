"""Credentials from the environment, under the names the official tools use.

:func:`auth_from_env` returns an :class:`EnvCredentials` holding the credential
and the base URL to use it with::

    creds = aiokeys.auth_from_env()
    async with aiokeys.Client(auth=creds.auth, base_url=creds.base_url) as client:
        ...

One kind of credential is picked, in this order:

1. a service account: ``MONGODB_ATLAS_CLIENT_ID`` and ``MONGODB_ATLAS_CLIENT_SECRET``;
2. a programmatic API key: ``MONGODB_ATLAS_PUBLIC_API_KEY`` (or
   ``MONGODB_ATLAS_PUBLIC_KEY``) and ``MONGODB_ATLAS_PRIVATE_API_KEY`` (or
   ``MONGODB_ATLAS_PRIVATE_KEY``);
3. an access token: ``MONGODB_ATLAS_ACCESS_TOKEN``.

Service accounts come first because Atlas recommends them. A variable that is
unset, empty or only whitespace counts as absent; values are stripped. Half of
a pair (an id without its secret) met before any complete kind is an error
rather than a silent fall-back to the next kind, so a typo in a variable name
is reported, not worked around; once a kind is complete, later ones are not
looked at.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

import attrs

from ._auth import Auth, BearerToken
from ._digest import DigestAuth
from ._errors import InvalidArgumentError, MissingCredentialsError
from ._oauth import ServiceAccount

__all__ = ["DEFAULT_BASE_URL", "EnvCredentials", "auth_from_env"]

#: Atlas' public base URL, used when ``MONGODB_ATLAS_BASE_URL`` is not set.
DEFAULT_BASE_URL: Final = "https://cloud.mongodb.com"

CLIENT_ID: Final = "MONGODB_ATLAS_CLIENT_ID"
CLIENT_SECRET: Final = "MONGODB_ATLAS_CLIENT_SECRET"
PUBLIC_KEY: Final = ("MONGODB_ATLAS_PUBLIC_API_KEY", "MONGODB_ATLAS_PUBLIC_KEY")
PRIVATE_KEY: Final = ("MONGODB_ATLAS_PRIVATE_API_KEY", "MONGODB_ATLAS_PRIVATE_KEY")
ACCESS_TOKEN: Final = "MONGODB_ATLAS_ACCESS_TOKEN"
BASE_URL: Final = "MONGODB_ATLAS_BASE_URL"


@attrs.frozen(kw_only=True)
class EnvCredentials:
    """What :func:`auth_from_env` found.

    Attributes:
        auth: The credential, ready for ``Client(auth=...)``; its repr shows no
            secret.
        base_url: ``MONGODB_ATLAS_BASE_URL`` if set, else :data:`DEFAULT_BASE_URL`.
            Not validated here: the client does that (and refuses plain http
            outside loopback).
        variables: The names of the variables the credential came from, for
            messages such as "using MONGODB_ATLAS_CLIENT_ID".
    """

    auth: Auth
    base_url: str
    variables: tuple[str, ...]


def auth_from_env(environ: Mapping[str, str] | None = None) -> EnvCredentials:
    """Build credentials from ``environ`` (default :data:`os.environ`).

    Args:
        environ: The variables to read; tests pass a plain dict.

    Returns:
        The credential, the base URL and the names of the variables used.

    Raises:
        MissingCredentialsError: No kind of credential is complete (the message
            names every variable looked for), or half of a pair is set (it
            names both halves).
        InvalidArgumentError: The two spellings of one key are set to
            different values, or a value is unusable (a control character
            such as a line break, a ``:`` in a public key); the message names
            the credential's field, never its value.
    """
    env = os.environ if environ is None else environ
    base_url = _get(env, BASE_URL) or DEFAULT_BASE_URL
    for build in (_service_account, _api_key, _access_token):
        found = build(env)
        if found is not None:
            auth, variables = found
            return EnvCredentials(auth=auth, base_url=base_url, variables=variables)
    raise MissingCredentialsError(
        "no Atlas credentials in the environment: set "
        f"{CLIENT_ID} and {CLIENT_SECRET} (service account), or "
        f"{PUBLIC_KEY[0]} and {PRIVATE_KEY[0]} (API key; also "
        f"{PUBLIC_KEY[1]} and {PRIVATE_KEY[1]}), or {ACCESS_TOKEN}"
    )


_Found = tuple[Auth, tuple[str, ...]] | None


def _service_account(env: Mapping[str, str]) -> _Found:
    client_id, secret = _get(env, CLIENT_ID), _get(env, CLIENT_SECRET)
    _check_pair((CLIENT_ID, client_id), (CLIENT_SECRET, secret))
    if client_id is None or secret is None:
        return None
    return ServiceAccount(client_id, secret), (CLIENT_ID, CLIENT_SECRET)


def _api_key(env: Mapping[str, str]) -> _Found:
    public_name, public = _either(env, PUBLIC_KEY)
    private_name, private = _either(env, PRIVATE_KEY)
    _check_pair((public_name, public), (private_name, private))
    if public is None or private is None:
        return None
    return DigestAuth(public, private), (public_name, private_name)


def _access_token(env: Mapping[str, str]) -> _Found:
    token = _get(env, ACCESS_TOKEN)
    if token is None:
        return None
    return BearerToken(token), (ACCESS_TOKEN,)


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _either(env: Mapping[str, str], names: tuple[str, str]) -> tuple[str, str | None]:
    """The value under the first spelling that is set, and that spelling."""
    first, second = _get(env, names[0]), _get(env, names[1])
    if first is not None and second is not None and first != second:
        raise InvalidArgumentError(
            f"{names[0]} and {names[1]} are both set, to different values; unset one"
        )
    if first is None and second is not None:
        return names[1], second
    return names[0], first


def _check_pair(first: tuple[str, str | None], second: tuple[str, str | None]) -> None:
    (name_a, a), (name_b, b) = first, second
    if (a is None) != (b is None):
        have, lack = (name_a, name_b) if b is None else (name_b, name_a)
        raise MissingCredentialsError(f"{have} is set but {lack} is not")
