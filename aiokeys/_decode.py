"""Turn JSON bodies into :class:`~aiokeys.Page` and :class:`~aiokeys.ApiKey`.

Every key goes through the client's own strict cattrs converter (see
:func:`aiokeys._models.make_converter`): strings are strings, timestamps carry
an offset, unknown fields are ignored. What it refuses becomes an
:class:`~aiokeys.UnexpectedResponseError` naming the page, the item index and
the field.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, Final

import cattrs

from ._errors import UnexpectedResponseError
from ._models import ApiKey, Link, Page

__all__ = ["decode_key", "decode_page", "decode_page_yielding"]

#: Keys decoded between two turns given back to the event loop: about a
#: millisecond of work, so a 500-key page never holds the loop for long.
YIELD_EVERY: Final = 100


def _structure_key(
    hook: Callable[[Any, type[ApiKey]], ApiKey],
    raw: Any,
    where: str | Callable[[], str],
) -> ApiKey:
    """Decode one key with the converter's hook, turning its complaint into ours.

    ``where`` names the key in the message; a callable is only called on failure,
    so a page of 500 good keys formats no message at all.
    """
    if type(raw) is not dict:
        place = where if isinstance(where, str) else where()
        raise UnexpectedResponseError(
            f"{place} is a JSON {type(raw).__name__}, not an object"
        )
    try:
        return hook(raw, ApiKey)
    except cattrs.ClassValidationError as exc:
        place = where if isinstance(where, str) else where()
        problems = "; ".join(cattrs.transform_error(exc, path="$"))
        raise UnexpectedResponseError(
            f"{place} is not a valid key: {problems}"
        ) from exc
    except (TypeError, ValueError, KeyError) as exc:  # converters built without detail
        place = where if isinstance(where, str) else where()
        raise UnexpectedResponseError(
            f"{place} is not a valid key: {type(exc).__name__}"
        ) from exc


def decode_key(converter: cattrs.Converter, raw: Any, *, where: str = "key") -> ApiKey:
    """Decode one key object; ``where`` names it in the error message."""
    return _structure_key(converter.get_structure_hook(ApiKey), raw, where)


def _decode_keys(
    converter: cattrs.Converter, results: list[Any], page_num: int
) -> tuple[ApiKey, ...]:
    hook = converter.get_structure_hook(ApiKey)
    return tuple(
        [
            _structure_key(
                hook, raw, functools.partial("page {} item {}".format, page_num, index)
            )
            for index, raw in enumerate(results)
        ]
    )


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


async def decode_page_yielding(
    converter: cattrs.Converter, body: Any, *, page_num: int, page_size: int
) -> Page:
    """:func:`decode_page`, giving the event loop a turn every :data:`YIELD_EVERY` keys.

    Listings decode pages while other requests are in flight and while the
    application's own tasks wait for the loop; decoding a whole page in one
    go held the loop for several milliseconds a page, and for far longer when
    many pages landed together (``nox -s bench``, scenario 5).
    """
    try:
        results = _results(body, page_num, page_size)
        total = _decode_total(body.get("totalCount"), page_num)
        links = _decode_links(body.get("links"), page_num)
        hook = converter.get_structure_hook(ApiKey)
        items: list[ApiKey] = []
        for start in range(0, len(results), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            items.extend(
                _structure_key(
                    hook, raw, functools.partial("page {} item {}".format, page_num, i)
                )
                for i, raw in enumerate(results[start : start + YIELD_EVERY], start)
            )
    except UnexpectedResponseError as exc:
        exc.page_num = page_num
        raise
    return Page(
        items=tuple(items),
        total_count=total,
        page_num=page_num,
        page_size=page_size,
        links=links,
    )


def _results(body: Any, page_num: int, page_size: int) -> list[Any]:
    """The ``results`` list of a list body, checked for shape and length."""
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
    return results


def _decode_page(
    converter: cattrs.Converter, body: Any, page_num: int, page_size: int
) -> Page:
    results = _results(body, page_num, page_size)
    return Page(
        items=_decode_keys(converter, results, page_num),
        total_count=_decode_total(body.get("totalCount"), page_num),
        page_num=page_num,
        page_size=page_size,
        links=_decode_links(body.get("links"), page_num),
    )
