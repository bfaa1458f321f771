"""aiokeys: list MongoDB Atlas AI model API keys fast, in order, safely.

Pages after the first are fetched concurrently on one aiohttp session, bounded,
and reordered so that ``async for`` sees keys in server order.
"""

from __future__ import annotations

from ._auth import Auth, BearerToken
from ._bulk import BulkKeyStream, BulkProgress, OnError, OrgFailure
from ._client import Client
from ._digest import DigestAuth
from ._env import EnvCredentials, auth_from_env
from ._errors import (
    AiokeysError,
    ApiError,
    AuthenticationError,
    BadRequestError,
    BadRequestField,
    ClientClosedError,
    DriftError,
    InvalidArgumentError,
    MissingCredentialsError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)
from ._models import ApiKey, Link, Page
from ._oauth import ServiceAccount
from ._retry import RetryPolicy
from ._stream import KeyStream, OnDrift, Progress

__version__ = "0.1.0"

__all__ = [
    "AiokeysError",
    "ApiError",
    "ApiKey",
    "Auth",
    "AuthenticationError",
    "BadRequestError",
    "BadRequestField",
    "BearerToken",
    "BulkKeyStream",
    "BulkProgress",
    "Client",
    "ClientClosedError",
    "DigestAuth",
    "DriftError",
    "EnvCredentials",
    "InvalidArgumentError",
    "KeyStream",
    "Link",
    "MissingCredentialsError",
    "NotFoundError",
    "OnDrift",
    "OnError",
    "OrgFailure",
    "Page",
    "PermissionDeniedError",
    "Progress",
    "RateLimitError",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServerError",
    "ServiceAccount",
    "TransportError",
    "UnexpectedResponseError",
    "auth_from_env",
]
