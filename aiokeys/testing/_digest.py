"""The server side of HTTP Digest authentication (RFC 7616), as Atlas runs it.

Atlas' programmatic API keys authenticate with Digest: user name = public key,
password = private key, ``qop=auth``. This module issues challenges and checks
answers:

* one challenge per configured algorithm (``MD5``, ``SHA-256``), the first
  configured first, because most clients (aiohttp included) read only the first
  ``WWW-Authenticate`` header;
* ``realm`` and ``opaque`` are fixed per server and must come back unchanged;
* a nonce serves at most ``max_uses`` requests and lives ``max_age`` seconds;
  after that a correct answer is refused with ``stale=true`` (RFC 7616 §3.3), so
  the client can retry with the fresh nonce without asking the user again;
* a nonce count (``nc``) seen before for the same nonce is a replay and refused.
  Counts need not arrive in order: concurrent requests race on the wire.

Only ``qop=auth`` is offered and accepted; ``auth-int``, ``-sess`` algorithms
and ``userhash`` are not simulated.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import attrs

from aiokeys._errors import InvalidArgumentError

__all__ = ["ALGORITHMS", "DigestOutcome", "DigestServer", "parse_digest"]

#: Digest algorithm name -> hashlib constructor name.
ALGORITHMS: Final[Mapping[str, str]] = {"MD5": "md5", "SHA-256": "sha256"}
_PAIR: Final = re.compile(
    r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?'
)
_REQUIRED: Final = (
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "qop",
    "nc",
    "cnonce",
)
_MAX_NONCES: Final = 10_000


def parse_digest(header: str) -> dict[str, str] | None:
    """Parse the parameters of an ``Authorization: Digest ...`` value."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    for match in _PAIR.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params[match.group(1).lower()] = value
    return params


@attrs.define(kw_only=True)
class _Nonce:
    issued: float
    uses: int = 0
    counts: set[int] = attrs.field(factory=set)


@attrs.frozen(kw_only=True)
class DigestOutcome:
    """Result of checking one ``Authorization: Digest`` header.

    ``user`` is the authenticated public key, or ``None`` when refused; then
    ``stale`` tells whether the refusal is only about the nonce.
    """

    user: str | None
    stale: bool = False


@attrs.define(kw_only=True)
class DigestServer:
    """Digest users, nonces and the checks of RFC 7616 §3.4 for ``qop=auth``."""

    algorithms: Sequence[str]
    realm: str = "MMS Public API"
    max_uses: int | None = None
    max_age: float | None = None
    clock: Callable[[], float] = time.monotonic
    users: dict[str, str] = attrs.field(factory=dict, repr=False)
    opaque: str = attrs.field(factory=lambda: secrets.token_hex(16))
    _nonces: dict[str, _Nonce] = attrs.field(factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        for name in self.algorithms:
            if name.upper() not in ALGORITHMS:
                raise InvalidArgumentError(
                    f"digest algorithm must be one of {sorted(ALGORITHMS)}, got {name!r}"
                )
        self.algorithms = tuple(name.upper() for name in self.algorithms)

    def challenges(self, *, stale: bool = False) -> list[str]:
        """``WWW-Authenticate`` values, one per algorithm, sharing one new nonce."""
        nonce = self._new_nonce()
        flag = "true" if stale else "false"
        return [
            f'Digest realm="{self.realm}", domain="", nonce="{nonce}", '
            f'algorithm={name}, qop="auth", stale={flag}, opaque="{self.opaque}"'
            for name in self.algorithms
        ]

    def expire_nonces(self) -> None:
        """Forget every nonce: the next answer with an old one is told ``stale``."""
        self._nonces.clear()

    def check(self, method: str, target: str, header: str) -> DigestOutcome:
        """Check an ``Authorization`` value for a request to ``target`` (path+query)."""
        params = parse_digest(header)
        if params is None or any(name not in params for name in _REQUIRED):
            return DigestOutcome(user=None)
        if not self._well_formed(params, target):
            return DigestOutcome(user=None)
        if not self._answer_matches(method, params):
            return DigestOutcome(user=None)
        return self._use_nonce(params)

    def _well_formed(self, params: Mapping[str, str], target: str) -> bool:
        algorithm = params.get("algorithm", "MD5").upper()
        return (
            algorithm in self.algorithms
            and params["qop"] == "auth"
            and params["realm"] == self.realm
            and params.get("opaque") == self.opaque
            and params["uri"] == target
            and re.fullmatch(r"[0-9a-fA-F]{8}", params["nc"]) is not None
            and params["username"] in self.users
        )

    def _answer_matches(self, method: str, params: Mapping[str, str]) -> bool:
        algorithm = params.get("algorithm", "MD5").upper()
        hash_name = ALGORITHMS[algorithm]

        def h(text: str) -> str:
            return hashlib.new(hash_name, text.encode()).hexdigest()

        password = self.users[params["username"]]
        ha1 = h(f"{params['username']}:{self.realm}:{password}")
        ha2 = h(f"{method}:{params['uri']}")
        expected = h(
            f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}"
        )
        return hmac.compare_digest(expected, params["response"].lower())

    def _use_nonce(self, params: Mapping[str, str]) -> DigestOutcome:
        state = self._nonces.get(params["nonce"])
        if state is None or self._worn_out(state):
            # A correct answer to a nonce we no longer honour: stale, not wrong.
            self._nonces.pop(params["nonce"], None)
            return DigestOutcome(user=None, stale=True)
        count = int(params["nc"], 16)
        if count in state.counts:
            return DigestOutcome(user=None)
        state.counts.add(count)
        state.uses += 1
        return DigestOutcome(user=params["username"])

    def _worn_out(self, state: _Nonce) -> bool:
        if self.max_uses is not None and state.uses >= self.max_uses:
            return True
        return self.max_age is not None and self.clock() - state.issued > self.max_age

    def _new_nonce(self) -> str:
        if len(self._nonces) >= _MAX_NONCES:
            # Drop the oldest half; dicts keep insertion order.
            for old in list(self._nonces)[: _MAX_NONCES // 2]:
                del self._nonces[old]
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = _Nonce(issued=self.clock())
        return nonce
