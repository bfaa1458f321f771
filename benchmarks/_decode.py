"""Decode-only measurements on the simulator's own response bodies.

The bodies are fetched once, raw, then decoded again and again with no network
in the way: orjson into dicts and nothing more (the floor), the standard
library's json into dicts (what ``response.json()`` and aiokeys' transport do),
a hand-written dict-to-class decoder with the same strictness as aiokeys' hooks,
and aiokeys' own page decoder (its cattrs converter). The gap between the
hand-written decoder and aiokeys', on the same JSON parser, is the decode
overhead; the gap to dicts is the price of classes and datetimes at all.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import math
import pstats
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from aiokeys import ApiKey
from aiokeys._decode import decode_page
from aiokeys._models import make_converter

from ._contenders import Target, _session, aiokeys_listing
from ._stats import Stats

__all__ = [
    "CLIENT_PATH",
    "DECODERS",
    "HAND_PATH",
    "fetch_bodies",
    "hand_decode",
    "measure_decoders",
    "profile",
]

Decoder = Callable[[bytes], int]


async def fetch_bodies(target: Target) -> list[bytes]:
    """Every page of ``target``'s org as the raw bytes the server sent."""
    async with _session(target) as session:
        first = await _raw_page(session, target, 1)
        pages = math.ceil(orjson.loads(first)["totalCount"] / target.page_size)
        rest = [await _raw_page(session, target, num) for num in range(2, pages + 1)]
    return [first, *rest]


async def _raw_page(
    session: aiohttp.ClientSession, target: Target, page_num: int
) -> bytes:
    url = f"{target.url}/api/atlas/v2/orgs/{target.org_id}/aiModelApiKeys"
    params = {"pageNum": str(page_num), "itemsPerPage": str(target.page_size)}
    async with session.get(url, params=params) as response:
        response.raise_for_status()
        return await response.read()


def _text(value: object) -> str | None:
    if value is None or type(value) is str:
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _moment(value: object) -> datetime | None:
    if value is None:
        return None
    if type(value) is not str:
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return parsed


def hand_decode(item: dict[str, Any]) -> ApiKey:
    """One Atlas key dict to an :class:`ApiKey`, by hand, as strict as aiokeys."""
    get = item.get
    return ApiKey(
        api_key_id=_text(get("apiKeyId")),
        name=_text(get("name")),
        status=_text(get("status")),
        created_at=_moment(get("createdAt")),
        created_by=_text(get("createdBy")),
        last_used_at=_moment(get("lastUsedAt")),
        group_id=_text(get("groupId")),
        masked_secret=_text(get("maskedSecret")),
        secret=_text(get("secret")),
        cloud=_text(get("cloud")),
        geography=_text(get("geography")),
        endpoint=_text(get("endpoint")),
    )


def _orjson_dicts(body: bytes) -> int:
    return len(orjson.loads(body)["results"])


def _stdlib_dicts(body: bytes) -> int:
    return len(json.loads(body)["results"])


def _orjson_hand(body: bytes) -> int:
    return len([hand_decode(item) for item in orjson.loads(body)["results"]])


def _stdlib_hand(body: bytes) -> int:
    return len([hand_decode(item) for item in json.loads(body)["results"]])


_CONVERTER = make_converter()


def _stdlib_client(body: bytes) -> int:
    page = decode_page(_CONVERTER, json.loads(body), page_num=1, page_size=500)
    return len(page.items)


def _orjson_client(body: bytes) -> int:
    page = decode_page(_CONVERTER, orjson.loads(body), page_num=1, page_size=500)
    return len(page.items)


#: The client's own path: what the transport and the engine run per page.
CLIENT_PATH = "json (stdlib) + aiokeys decode_page"
#: The same JSON parser with a hand-written decoder: the fair yardstick.
HAND_PATH = "json (stdlib) + hand-written decoder"

#: Decoders by table name, fastest-possible first.
DECODERS: Sequence[tuple[str, Decoder]] = (
    ("orjson -> dicts", _orjson_dicts),
    ("json (stdlib) -> dicts", _stdlib_dicts),
    ("orjson + hand-written decoder", _orjson_hand),
    (HAND_PATH, _stdlib_hand),
    (CLIENT_PATH, _stdlib_client),
    ("orjson + aiokeys decode_page", _orjson_client),
)


def measure_decoders(bodies: list[bytes], *, runs: int) -> dict[str, Stats]:
    """Keys per second of every decoder over all ``bodies``, interleaved run by run."""
    rates: dict[str, list[float]] = {name: [] for name, _ in DECODERS}
    for _ in range(runs):
        for name, decoder in DECODERS:
            start = time.perf_counter()
            keys = sum(decoder(body) for body in bodies)
            rates[name].append(keys / (time.perf_counter() - start))
    return {name: Stats(samples=tuple(samples)) for name, samples in rates.items()}


def profile(target: Target, bodies: list[bytes], *, top: int = 25) -> str:
    """cProfile of aiokeys' page decoder over ``bodies`` and of one full listing.

    cProfile inflates per-call costs and counts every resumption of a coroutine
    as a call; read it for where time goes, not for how much.
    """
    out = io.StringIO()
    for title, run in (
        (
            f"decode only: {CLIENT_PATH}",
            lambda: [_stdlib_client(b) for b in bodies],
        ),
        (
            "full listing: aiokeys ordered",
            lambda: asyncio.run(aiokeys_listing(target, ordered=True)),
        ),
    ):
        profiler = cProfile.Profile()
        profiler.runcall(run)
        out.write(f"### {title}\n\n```\n")
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
        stats.print_stats(top)
        out.write("```\n\n")
    return out.getvalue()
