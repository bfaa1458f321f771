"""Fault injection: :class:`Fault` rules and the bookkeeping that fires them.

A rule says *what* goes wrong (``kind``) and *where* (selectors). Selectors left
``None`` match anything. ``attempts`` picks attempt numbers of one
``(path, pageNum)`` pair, counted from 1 over every authenticated request for
that pair ("fail the first two tries of page 3": ``page_num=3,
attempts={1, 2}``); ``times`` fires on the first N requests that match the
other selectors. A rule with neither fires on every match.

Only authenticated requests reach the rules (a Digest client's first,
unauthenticated try is answered 401 and is not an attempt). Note that aiohttp's
client silently resends an idempotent request once after a connection reset,
so a ``reset`` rule limited to ``times=1`` is invisible to an aiohttp caller.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Final, Literal

import attrs

from aiokeys._errors import InvalidArgumentError

__all__ = ["TERMINAL_KINDS", "Fault", "FaultBook", "FaultKind", "RequestSite"]

FaultKind = Literal[
    "status", "html", "empty", "latency", "reset", "truncate", "content_type"
]
_KINDS: Final = frozenset(
    {"status", "html", "empty", "latency", "reset", "truncate", "content_type"}
)
#: Kinds that replace the answer; at most one of them fires per request.
TERMINAL_KINDS: Final = frozenset({"status", "html", "empty", "reset"})
_DEFAULT_STATUS: Final = {"status": 500, "html": 502, "empty": 500}


def _frozen_ints(value: Iterable[int] | None) -> frozenset[int] | None:
    return None if value is None else frozenset(value)


@attrs.frozen(kw_only=True)
class Fault:
    """One fault rule for :meth:`FakeAtlas.add_fault`.

    Attributes:
        kind: ``"status"`` an Atlas error JSON of ``status`` (default 500) with
            ``error_code`` and an optional ``Retry-After``; ``"html"`` a proxy's
            HTML page (default 502); ``"empty"`` an empty body (default 500);
            ``"latency"`` waits ``delay`` seconds, then answers normally;
            ``"reset"`` resets the connection without an answer; ``"truncate"``
            sends the normal answer's headers and half its body, then closes;
            ``"content_type"`` the normal body labelled ``content_type``.
        status: HTTP status for ``status``/``html``/``empty``.
        error_code: Atlas ``errorCode`` for ``status`` (a per-status default).
        retry_after: Seconds for a ``Retry-After`` header (``status``,
            ``html``, ``empty``); fractions are written as decimals.
        delay: Seconds to wait for ``latency``.
        content_type: Content type sent by ``content_type``.
        org_id: Only requests under ``/orgs/{org_id}``.
        group_id: Only requests under ``/groups/{group_id}``.
        path: Only requests whose path contains this substring.
        page_num: Only list requests for this ``pageNum`` (absent counts as 1).
        attempts: Only these 1-based attempt numbers of a ``(path, pageNum)``.
        times: Only the first ``times`` matching requests.
    """

    kind: FaultKind = attrs.field()
    status: int | None = None
    error_code: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    content_type: str = "text/plain"
    org_id: str | None = None
    group_id: str | None = None
    path: str | None = None
    page_num: int | None = None
    attempts: frozenset[int] | None = attrs.field(default=None, converter=_frozen_ints)
    times: int | None = None

    @kind.validator
    def _check_kind(self, _: attrs.Attribute[str], value: str) -> None:
        if value not in _KINDS:
            raise InvalidArgumentError(
                f"Fault.kind must be one of {sorted(_KINDS)}, got {value!r}"
            )

    def __attrs_post_init__(self) -> None:
        if self.attempts is not None and self.times is not None:
            raise InvalidArgumentError("Fault takes attempts or times, not both")
        if self.times is not None and self.times < 1:
            raise InvalidArgumentError(f"Fault.times must be >= 1, got {self.times!r}")
        if self.delay < 0:
            raise InvalidArgumentError(f"Fault.delay must be >= 0, got {self.delay!r}")

    @property
    def effective_status(self) -> int:
        """The status this fault answers with (its own or the kind's default)."""
        return (
            self.status
            if self.status is not None
            else _DEFAULT_STATUS.get(self.kind, 500)
        )


@attrs.frozen(kw_only=True)
class RequestSite:
    """Where a request lands, as far as fault selectors care."""

    path: str
    org_id: str | None
    group_id: str | None
    page_num: int | None


@attrs.define
class FaultBook:
    """The rules in force, their hit counts and the per-page attempt counters."""

    rules: list[Fault] = attrs.field(factory=list)
    hits: list[int] = attrs.field(factory=list)
    attempts: Counter[tuple[str, int | None]] = attrs.field(factory=Counter)

    def add(self, fault: Fault) -> None:
        self.rules.append(fault)
        self.hits.append(0)

    def clear(self) -> None:
        """Drop every rule and restart attempt numbering."""
        self.rules.clear()
        self.hits.clear()
        self.attempts.clear()

    def fire(self, site: RequestSite) -> list[Fault]:
        """Count this attempt and return the rules it triggers, in rule order.

        Every matching ``latency``, ``truncate`` and ``content_type`` rule fires;
        of the rules that replace the answer (``status``, ``html``, ``empty``,
        ``reset``) only the first matching one does. A rule that does not fire
        does not use up its ``times``.
        """
        key = (site.path, site.page_num)
        self.attempts[key] += 1
        attempt = self.attempts[key]
        fired: list[Fault] = []
        answered = False
        for index, rule in enumerate(self.rules):
            if not self._applies(index, rule, site, attempt):
                continue
            if rule.kind in TERMINAL_KINDS:
                if answered:
                    continue
                answered = True
            self.hits[index] += 1
            fired.append(rule)
        return fired

    def _applies(
        self, index: int, rule: Fault, site: RequestSite, attempt: int
    ) -> bool:
        if not _selected(rule, site):
            return False
        if rule.attempts is not None and attempt not in rule.attempts:
            return False
        return rule.times is None or self.hits[index] < rule.times


def _selected(rule: Fault, site: RequestSite) -> bool:
    return (
        (rule.org_id is None or rule.org_id == site.org_id)
        and (rule.group_id is None or rule.group_id == site.group_id)
        and (rule.path is None or rule.path in site.path)
        and (rule.page_num is None or rule.page_num == site.page_num)
    )
