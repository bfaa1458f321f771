"""Turn JSON bodies into :class:`~aiokeys.Page` and :class:`~aiokeys.ApiKey`.

Listings decode a lot of keys (an export may decode hundreds of thousands), so
each key first goes through a direct path that checks the same rules as the
client's strict cattrs converter (strings are strings, timestamps carry an
offset, unknown fields are ignored) at a fraction of the cost. Anything the
direct path does not accept is handed to the converter, which either decodes
it or explains why not; that explanation becomes an
:class:`~aiokeys.UnexpectedResponseError` naming the page, the item index and
the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import cattrs

from ._errors import UnexpectedResponseError
from ._models import _JSON_NAMES, ApiKey, Link, Page

__all__ = ["decode_key", "decode_page"]

_DATETIME_ATTRS: Final = frozenset({"created_at", "last_used_at"})

# (slot setter, JSON name, is a timestamp) per field. Setting the slots through
# their descriptors skips the frozen class's guarded ``__setattr__``, which is
# most of the cost of building a key; every slot is always set.
_FIELDS: Final = tuple(
    (getattr(ApiKey, attr).__set__, name, attr in _DATETIME_ATTRS)
    for attr, name in _JSON_NAMES.items()
)
_new = object.__new__
_fromisoformat = datetime.fromisoformat


def _direct_key(raw: Mapping[str, Any]) -> ApiKey | None:
    """Decode a well-formed key without cattrs, or return ``None`` to defer to it.

    Accepts exactly what the strict converter accepts: each field absent,
    ``null`` or a string, timestamps ISO 8601 with an offset; other fields
    ignored. ``tests/test_stream_decode.py`` checks both agree.
    """
    key = _new(ApiKey)
    get = raw.get
    for setter, name, is_timestamp in _FIELDS:
        value = get(name)
        if value is not None:
            if type(value) is not str:
                return None
            if is_timestamp:
                try:
                    value = _fromisoformat(value)
                except ValueError:
                    return None
                if value.tzinfo is None:
                    return None
        setter(key, value)
    return key


def _slow_key(converter: cattrs.Converter, raw: Any, where: str) -> ApiKey:
    """Decode through the converter, turning its complaint into ours."""
    if not isinstance(raw, dict):
        raise UnexpectedResponseError(
            f"{where} is a JSON {type(raw).__name__}, not an object"
        )
    try:
        return converter.structure(raw, ApiKey)
    except cattrs.ClassValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path="$"))
        raise UnexpectedResponseError(
            f"{where} is not a valid key: {problems}"
        ) from exc
    except (TypeError, ValueError, KeyError) as exc:  # converters built without detail
        raise UnexpectedResponseError(
            f"{where} is not a valid key: {type(exc).__name__}"
        ) from exc


def decode_key(converter: cattrs.Converter, raw: Any, *, where: str = "key") -> ApiKey:
    """Decode one key object; ``where`` names it in the error message."""
    if type(raw) is dict:
        key = _direct_key(raw)
        if key is not None:
            return key
    return _slow_key(converter, raw, where)


def _decode_keys(
    converter: cattrs.Converter, results: list[Any], page_num: int
) -> tuple[ApiKey, ...]:
    direct = _direct_key
    out: list[ApiKey] = []
    append = out.append
    for index, raw in enumerate(results):
        key = direct(raw) if type(raw) is dict else None
        if key is None:
            key = _slow_key(converter, raw, f"page {page_num} item {index}")
        append(key)
    return tuple(out)


def _decode_links(raw: Any, page_num: int) -> tuple[Link, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise UnexpectedResponseError(f"page {page_num}: links is not a list")
    links: list[Link] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise UnexpectedResponseError(
                f"page {page_num}: links[{index}] is not an object"
            )
        rel, href = entry.get("rel"), entry.get("href")
        if not (rel is None or type(rel) is str) or not (
            href is None or type(href) is str
        ):
            raise UnexpectedResponseError(
                f"page {page_num}: links[{index}] rel and href must be strings"
            )
        links.append(Link(rel=rel, href=href))
    return tuple(links)


def _decode_total(raw: Any, page_num: int) -> int | None:
    if raw is None:
        return None
    if type(raw) is not int or raw < 0:
        raise UnexpectedResponseError(
            f"page {page_num}: totalCount must be a non-negative integer, "
            f"got a JSON {type(raw).__name__}"
        )
    return raw


def decode_page(
    converter: cattrs.Converter, body: Any, *, page_num: int, page_size: int
) -> Page:
    """Decode a list body into a :class:`Page` as requested.

    Raises:
        UnexpectedResponseError: The body is not an object with a ``results``
            list of keys, or ``totalCount``/``links`` have the wrong shape. The
            message names the page, and for a bad key its index and field.
    """
    try:
        return _decode_page(converter, body, page_num, page_size)
    except UnexpectedResponseError as exc:
        exc.page_num = page_num
        raise


def _decode_page(
    converter: cattrs.Converter, body: Any, page_num: int, page_size: int
) -> Page:
    if not isinstance(body, dict):
        raise UnexpectedResponseError(
            f"page {page_num}: body is a JSON {type(body).__name__}, not an object"
        )
    results = body.get("results")
    if not isinstance(results, list):
        raise UnexpectedResponseError(f"page {page_num}: body has no results list")
    if len(results) > page_size:
        raise UnexpectedResponseError(
            f"page {page_num}: {len(results)} results for a page size of {page_size}"
        )
    return Page(
        items=_decode_keys(converter, results, page_num),
        total_count=_decode_total(body.get("totalCount"), page_num),
        page_num=page_num,
        page_size=page_size,
        links=_decode_links(body.get("links"), page_num),
    )
