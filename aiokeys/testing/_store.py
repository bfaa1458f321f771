"""The simulator's data: organizations, projects and keys, and realistic seeding.

Keys are stored once, as compact JSON bytes without the secret (Atlas shows the
secret only in the answer to a create). Each organization and each project keeps
its keys in a list in creation order, so a page is one slice and one
``bytes.join``: no scan, no re-encoding, whatever the size of the listing.
Removing a key costs one ``list.remove`` per list it is in, which is fine for
the handful of removals a drift test makes.
"""

from __future__ import annotations

import contextlib
import gc
import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from aiokeys._errors import InvalidArgumentError

from ._seed import fake_keys, iso

__all__ = ["Group", "Org", "Store", "StoredKey", "dumps"]

_HEX_TABLE: Final = bytes(ord("0123456789abcdef"[b % 16]) for b in range(256))

_EPOCH: Final = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)
_SPAN_SECONDS: Final = 300 * 86400


def dumps(value: Any) -> bytes:
    """Compact JSON bytes, the encoding used on the wire."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@attrs.define(eq=False, slots=True)
class StoredKey:
    """One key: identity, owners and its pre-serialised public JSON."""

    api_key_id: str
    org_id: str
    group_id: str
    body: bytes

    def to_dict(self) -> dict[str, Any]:
        """Decode the stored JSON (a fresh dict, safe to modify)."""
        result: dict[str, Any] = json.loads(self.body)
        return result


@attrs.define(eq=False)
class Group:
    """A project: its id, its organization and its keys in creation order."""

    group_id: str
    org_id: str
    keys: list[StoredKey] = attrs.field(factory=list)


@attrs.define(eq=False)
class Org:
    """An organization: its projects and all their keys in creation order."""

    org_id: str
    groups: list[str] = attrs.field(factory=list)
    keys: list[StoredKey] = attrs.field(factory=list)
    last_created: datetime = _EPOCH


class Store:
    """Orgs, projects and keys in memory, with O(1) lookups by id."""

    def __init__(self) -> None:
        self.orgs: dict[str, Org] = {}
        self.groups: dict[str, Group] = {}
        self.keys: dict[str, StoredKey] = {}
        self._ids = random.Random(0x41746C6173)

    def new_hex_id(self) -> str:
        """A fresh 24-hex id, deterministic per store, unique among orgs and groups."""
        while True:
            candidate = self._ids.randbytes(24).translate(_HEX_TABLE).decode()
            if candidate not in self.orgs and candidate not in self.groups:
                return candidate

    def add_org(self, org_id: str | None) -> str:
        org_id = org_id or self.new_hex_id()
        _check_hex_id("org_id", org_id)
        if org_id in self.orgs or org_id in self.groups:
            raise InvalidArgumentError(f"id {org_id!r} is already in use")
        self.orgs[org_id] = Org(org_id=org_id)
        return org_id

    def add_group(self, org_id: str, group_id: str | None) -> str:
        org = self.org(org_id)
        group_id = group_id or self.new_hex_id()
        _check_hex_id("group_id", group_id)
        if group_id in self.orgs or group_id in self.groups:
            raise InvalidArgumentError(f"id {group_id!r} is already in use")
        self.groups[group_id] = Group(group_id=group_id, org_id=org_id)
        org.groups.append(group_id)
        return group_id

    def org(self, org_id: str) -> Org:
        try:
            return self.orgs[org_id]
        except KeyError:
            raise InvalidArgumentError(f"unknown org_id {org_id!r}") from None

    def group(self, group_id: str) -> Group:
        try:
            return self.groups[group_id]
        except KeyError:
            raise InvalidArgumentError(f"unknown group_id {group_id!r}") from None

    def scope_keys(self, scope_id: str) -> list[StoredKey]:
        """The key list of an org or a project id (raises on an unknown id)."""
        if scope_id in self.orgs:
            return self.orgs[scope_id].keys
        return self.group(scope_id).keys

    def insert(self, group_id: str, record: dict[str, Any]) -> StoredKey:
        """Store a key dict (its ``secret`` is not stored) at the end of its lists."""
        group = self.group(group_id)
        public = {name: value for name, value in record.items() if name != "secret"}
        stored = StoredKey(
            api_key_id=record["apiKeyId"],
            org_id=group.org_id,
            group_id=group_id,
            body=dumps(public),
        )
        self._append(stored)
        return stored

    def _append(self, stored: StoredKey) -> None:
        self.keys[stored.api_key_id] = stored
        self.groups[stored.group_id].keys.append(stored)
        self.orgs[stored.org_id].keys.append(stored)

    def replace(self, stored: StoredKey, record: dict[str, Any]) -> None:
        """Rewrite a key's JSON in place (a rename); its position is kept."""
        stored.body = dumps({n: v for n, v in record.items() if n != "secret"})

    def remove(self, api_key_id: str) -> bool:
        """Remove a key from every list; ``False`` if there was no such key."""
        stored = self.keys.pop(api_key_id, None)
        if stored is None:
            return False
        self.groups[stored.group_id].keys.remove(stored)
        self.orgs[stored.org_id].keys.remove(stored)
        return True

    def seed(
        self,
        org_id: str,
        count: int,
        groups: int | Sequence[str],
        seed: int | str,
        *,
        records: bool = True,
    ) -> list[dict[str, Any]]:
        """Create ``count`` realistic keys spread over projects of ``org_id``.

        Returns their dicts (with secrets), or ``[]`` with ``records=False``,
        which saves time and memory when nobody looks at them.
        """
        org = self.org(org_id)
        if count < 0:
            raise InvalidArgumentError(f"count must be >= 0, got {count!r}")
        group_ids = self._seed_groups(org, groups)
        rng = random.Random(f"{seed}:{org_id}:{len(org.keys)}")
        made = fake_keys(
            rng,
            group_ids,
            org.last_created,
            count,
            self.keys,
            _SPAN_SECONDS,
            records=records,
        )
        out: list[dict[str, Any]] = []
        last = ""
        with _gc_paused():
            for key_id, group_id, created, body, record in made:
                stored = StoredKey(
                    api_key_id=key_id, org_id=org_id, group_id=group_id, body=body
                )
                self._append(stored)
                last = created
                if record is not None:
                    out.append(record)
        if last:
            org.last_created = datetime.fromisoformat(last)
        return out

    def seed_into_scope(
        self, scope_id: str, count: int, *, seed: int | str
    ) -> list[dict[str, Any]]:
        """Seed ``count`` keys into a project, or over an org's existing projects."""
        if scope_id in self.groups:
            group = self.groups[scope_id]
            return self.seed(group.org_id, count, [scope_id], seed)
        org = self.org(scope_id)
        return self.seed(scope_id, count, org.groups or 1, seed)

    def _seed_groups(self, org: Org, groups: int | Sequence[str]) -> list[str]:
        if isinstance(groups, int):
            if groups < 1:
                raise InvalidArgumentError(f"groups must be >= 1, got {groups!r}")
            while len(org.groups) < groups:
                self.add_group(org.org_id, None)
            return org.groups[:groups]
        chosen = list(groups)
        for group_id in chosen:
            if self.group(group_id).org_id != org.org_id:
                raise InvalidArgumentError(
                    f"project {group_id!r} is not in org {org.org_id!r}"
                )
        if not chosen:
            raise InvalidArgumentError("groups must name at least one project")
        return chosen

    def make_key(
        self, group_id: str, name: str, created: datetime, created_by: str
    ) -> dict[str, Any]:
        """A new key dict as a create answers it (with its secret), not yet stored."""
        rng = random.Random()
        record = next(fake_keys(rng, [group_id], created, 1, self.keys, 1.0))[4]
        assert record is not None
        record.update(
            name=name,
            createdBy=created_by,
            lastUsedAt=None,
            status="ACTIVE",
            createdAt=iso(created),
        )
        org = self.orgs[self.group(group_id).org_id]
        org.last_created = max(org.last_created, created)
        return record


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic collector during a bulk load.

    Seeding creates millions of small containers; the collector would rescan
    them again and again while they are being made (about 40% of the time).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_hex_id(label: str, value: str) -> None:
    if len(value) != 24 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidArgumentError(
            f"{label} must be 24 lowercase hex digits, got {value!r}"
        )
