"""The values aiokeys hands out: :class:`ApiKey`, :class:`Page` and :class:`Link`.

Decoding goes through a cattrs :class:`~cattrs.Converter` that each client builds
for itself with :func:`make_converter`; the global converter is never touched.
Its hooks are strict: cattrs' stock ``str`` hook would turn ``null`` into
``'None'`` and ``123`` into ``'123'``, so ours accept a JSON string and nothing
else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

__all__ = ["ApiKey", "Link", "Page", "make_converter"]

# snake_case attribute -> Atlas camelCase JSON name.
_JSON_NAMES: Final[Mapping[str, str]] = {
    "api_key_id": "apiKeyId",
    "name": "name",
    "status": "status",
    "created_at": "createdAt",
    "created_by": "createdBy",
    "last_used_at": "lastUsedAt",
    "group_id": "groupId",
    "masked_secret": "maskedSecret",
    "secret": "secret",
    "cloud": "cloud",
    "geography": "geography",
    "endpoint": "endpoint",
}


@attrs.frozen(kw_only=True, slots=True)
class ApiKey:
    """One AI model API key as Atlas lists it.

    Every field is optional in Atlas' schema, so every field may be ``None``.
    ``status`` is kept exactly as Atlas sends it (no enum is published).
    ``secret`` is left out of ``repr`` and of equality: two listings of the same
    key compare equal whether or not one of them carried the secret.
    """

    api_key_id: str | None = None
    name: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    last_used_at: datetime | None = None
    group_id: str | None = None
    masked_secret: str | None = None
    secret: str | None = attrs.field(default=None, repr=False, eq=False)
    cloud: str | None = None
    geography: str | None = None
    endpoint: str | None = None

    def to_atlas(self, *, include_secret: bool = False) -> dict[str, Any]:
        """Return the key as Atlas JSON (camelCase), every field present.

        A field Atlas did not send, or sent as ``null``, is written as ``None``
        (``null``), so every record has the same fields and "never used"
        (``lastUsedAt: null``) stays visible. Datetimes are written as Atlas
        writes them: ISO 8601 with microseconds and the offset
        (``2026-01-15T16:47:49.855000+00:00``). The secret is written only when
        ``include_secret=True`` is asked for by name.
        """
        out: dict[str, Any] = {}
        for attr, json_name in _JSON_NAMES.items():
            if attr == "secret" and not include_secret:
                continue
            value = getattr(self, attr)
            if isinstance(value, datetime):
                value = value.isoformat(timespec="microseconds")
            out[json_name] = value
        return out


@attrs.frozen(kw_only=True, slots=True)
class Link:
    """One entry of a page's ``links``: ``rel`` is ``self``, ``next`` or ``previous``."""

    rel: str | None = None
    href: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class Page:
    """One page of a list endpoint, as requested.

    ``total_count`` is Atlas' estimate of the whole list and may be ``None``;
    ``page_num`` and ``page_size`` are what was asked for, not what came back.
    """

    items: tuple[ApiKey, ...]
    total_count: int | None
    page_num: int
    page_size: int
    links: tuple[Link, ...] = ()


def _structure_str(value: object, _: object) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_optional_str(value: object, _: object) -> str | None:
    if value is None or type(value) is str:
        return value
    raise TypeError(f"expected a string or null, got {type(value).__name__}")


def _structure_datetime(value: object, _: object) -> datetime:
    if type(value) is not str:
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return parsed


def _structure_optional_datetime(value: object, _: object) -> datetime | None:
    return None if value is None else _structure_datetime(value, _)


def _structure_int(value: object, _: object) -> int:
    # bool is an int subclass in Python, not in JSON.
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def make_converter() -> cattrs.Converter:
    """Build a converter with aiokeys' strict hooks and camelCase renames.

    Unknown JSON fields are ignored; a wrong type raises cattrs'
    ``ClassValidationError`` naming the field (the client turns it into
    :class:`~aiokeys.UnexpectedResponseError`).

    The optional types get hooks of their own: left to cattrs, ``str | None``
    goes through its generic union handling on every field of every key,
    which doubled the cost of decoding a page (``nox -s bench``, scenario 3).
    """
    converter = cattrs.Converter(detailed_validation=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(str | None, _structure_optional_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook(datetime | None, _structure_optional_datetime)
    renames: dict[str, Any] = {
        attr: override(rename=json_name)
        for attr, json_name in _JSON_NAMES.items()
        if attr != json_name
    }
    converter.register_structure_hook(
        ApiKey, make_dict_structure_fn(ApiKey, converter, **renames)
    )
    return converter
