"""Realistic fake keys, fast: one ``randbytes`` call per key, JSON by template.

Seeding a million keys must take seconds, not minutes, so a key's randomness
comes from one block of random bytes, and its public JSON is written by a
template rather than ``json.dumps`` (every generated value is plain ASCII with
no character JSON would escape; a test checks the template against
``json.dumps``). Everything derives from the ``random.Random`` passed in, so
the same seed gives the same keys.
"""

from __future__ import annotations

import functools
import random
import string
import struct
from collections.abc import Container, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["FakeKey", "fake_keys", "iso", "random_key_id"]

_ALNUM: Final = string.ascii_lowercase + string.digits
_SECRET_ALPHABET: Final = string.ascii_letters + string.digits
# bytes.translate tables: any random byte -> one character of the alphabet. The
# slight modulo bias is irrelevant for simulated ids and much faster than choices().
_ID_TABLE: Final = bytes(ord(_ALNUM[b % len(_ALNUM)]) for b in range(256))
_SECRET_TABLE: Final = bytes(
    ord(_SECRET_ALPHABET[b % len(_SECRET_ALPHABET)]) for b in range(256)
)
_ENVS: Final = ("prod", "staging", "dev", "test", "ci", "sandbox", "qa")
_USES: Final = (
    "embeddings",
    "reranking",
    "search",
    "rag",
    "chatbot",
    "ingest",
    "analytics",
    "support-bot",
)
_CREATORS: Final = (
    "Jane Roe",
    "John Doe",
    "Ana Lima",
    "Kenji Sato",
    "Priya Nair",
    "Lars Berg",
    "Amara Okafor",
)
# 2 in 256 revoked, 4 disabled, 3 expired, the rest active.
_STATUSES: Final = (
    ("REVOKED",) * 2 + ("DISABLED",) * 4 + ("EXPIRED",) * 3 + ("ACTIVE",) * 247
)
_NULL_USED: Final = 64  # of 256: about a quarter never used
_TEMPLATE: Final = (
    '{{"apiKeyId":"{0}","cloud":"ANY","createdAt":"{1}","createdBy":"{2}",'
    '"endpoint":"ai.mongodb.com","geography":"ANY","groupId":"{3}","lastUsedAt":{4},'
    '"maskedSecret":"{5}","name":"{6}","status":"{7}"}}'
)
# After the id (24 bytes), the secret (43) and the time step (4): used-or-not,
# last use in 2-minute steps (up to 91 days), status, creator, project, name parts.
_EXTRA: Final = struct.Struct(">BHBBHBBH")
_BLOCK: Final = 24 + 43 + 4 + _EXTRA.size


def iso(moment: datetime) -> str:
    """ISO 8601 with microseconds and offset, as Atlas writes timestamps."""
    return moment.isoformat(timespec="microseconds")


def random_key_id(rng: random.Random) -> str:
    """A 24-character lowercase alphanumeric key id."""
    return rng.randbytes(24).translate(_ID_TABLE).decode()


#: What :func:`fake_keys` yields: id, project id, createdAt, public JSON, and
#: the full dict with the secret (``None`` unless asked for).
FakeKey = tuple[str, str, str, bytes, "dict[str, Any] | None"]


def fake_keys(
    rng: random.Random,
    group_ids: Sequence[str],
    start: datetime,
    count: int,
    taken: Container[str],
    span_seconds: float,
    *,
    records: bool = True,
) -> Iterator[FakeKey]:
    """Yield ``count`` keys, each with its public JSON bytes (no secret).

    Creation times rise from ``start`` over about ``span_seconds``, in whole
    milliseconds; ids already in ``taken`` are never produced. With
    ``records=False`` no dict is built (a bulk load that only serves keys).
    """
    step_ms = max(2, int(2000 * span_seconds / max(count, 1)))
    clock = _MillisClock(start)
    for _ in range(count):
        block = rng.randbytes(_BLOCK)
        key_id = block[:24].translate(_ID_TABLE).decode()
        while key_id in taken:
            key_id = random_key_id(rng)
        clock.advance(1 + int.from_bytes(block[67:71]) % step_ms)
        yield _one(block, key_id, group_ids, clock, records)


class _MillisClock:
    """Creation time as integer milliseconds, formatted without ``datetime``.

    ``datetime`` arithmetic and ``isoformat`` were half the cost of a key; the
    date part is cached per day and the time of day is plain integer maths.
    """

    def __init__(self, start: datetime) -> None:
        self.ms = int(start.timestamp() * 1000)
        self._days: dict[int, str] = {}

    def advance(self, ms: int) -> None:
        self.ms += ms

    def format(self, ms: int) -> str:
        day, rest = divmod(ms, 86_400_000)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%dT")
            self._days[day] = prefix
        second, millis = divmod(rest, 1000)
        return f"{prefix}{_clock_faces()[second]}.{millis:03d}000+00:00"


@functools.cache
def _clock_faces() -> tuple[str, ...]:
    """``"HH:MM:SS"`` for every second of a day (86,400 short strings, built once)."""
    return tuple(
        f"{h:02d}:{m:02d}:{s:02d}"
        for h in range(24)
        for m in range(60)
        for s in range(60)
    )


def _one(
    block: bytes,
    key_id: str,
    group_ids: Sequence[str],
    clock: _MillisClock,
    records: bool,
) -> FakeKey:
    secret = "al-" + block[24:67].translate(_SECRET_TABLE).decode()
    flag, steps, status, creator, group, name1, name2, name3 = _EXTRA.unpack_from(
        block, 71
    )
    created = clock.format(clock.ms)
    used = None if flag < _NULL_USED else clock.format(clock.ms + steps * 120_000)
    group_id = group_ids[group % len(group_ids)]
    values = (
        key_id,
        created,
        _CREATORS[creator % len(_CREATORS)],
        group_id,
        used,
        "al-****" + secret[-4:],
        f"{_ENVS[name1 % len(_ENVS)]}-{_USES[name2 % len(_USES)]}-{name3 % 1000:03d}",
        _STATUSES[status],
    )
    body = _TEMPLATE.format(
        *values[:4], "null" if used is None else f'"{used}"', *values[5:]
    )
    return (
        key_id,
        group_id,
        created,
        body.encode(),
        _record(values, secret) if records else None,
    )


def _record(values: tuple[str | None, ...], secret: str) -> dict[str, Any]:
    key_id, created, created_by, group_id, used, masked, name, status = values
    return {
        "apiKeyId": key_id,
        "cloud": "ANY",
        "createdAt": created,
        "createdBy": created_by,
        "endpoint": "ai.mongodb.com",
        "geography": "ANY",
        "groupId": group_id,
        "lastUsedAt": used,
        "maskedSecret": masked,
        "name": name,
        "secret": secret,
        "status": status,
    }
