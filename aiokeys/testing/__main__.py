"""Run the Atlas simulator standalone: ``python -m aiokeys.testing``.

Prints the base URL, the organization ids and the credentials to use (or, with
``--json``, one JSON line ``{"url", "orgs", "token", "digest", "client"}``),
then serves until SIGINT or SIGTERM. Credentials not given on the command line
are generated. ``digest`` is ``"PUBLIC:PRIVATE"`` and ``client`` is
``"CLIENT_ID:CLIENT_SECRET"``, ready for ``curl --user``.

``--rate-limit CAPACITY/REFILL/PERIOD`` turns on the token bucket per org and
per project (``RateLimit-*`` headers, 429 with ``Retry-After``), and
``--retired-version V`` (repeatable) answers version ``V`` with 410, so both
can be seen with curl. The server is meant for loopback: it prints working
credentials, so a ``--host`` that listens elsewhere draws a warning on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import math
import re
import secrets
import signal
import socket
import sys
from collections.abc import Sequence

from aiokeys._errors import InvalidArgumentError

from ._app import SERVED_VERSIONS
from ._atlas import FakeAtlas, _url_host
from ._ratelimit import RateLimit

__all__ = ["main"]


def _pair(text: str) -> tuple[str, str]:
    left, sep, right = text.partition(":")
    if not sep or not left or not right:
        raise argparse.ArgumentTypeError("expected NAME:SECRET")
    return left, right


def _rate_limit(text: str) -> RateLimit:
    """``CAPACITY/REFILL/PERIOD``, e.g. ``10/5/60``, as a :class:`RateLimit`."""
    parts = text.split("/")
    if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit():
        raise argparse.ArgumentTypeError(
            "expected CAPACITY/REFILL/PERIOD, e.g. 10/5/60"
        )
    try:
        refill, period = float(parts[1]), float(parts[2])
        if not (math.isfinite(refill) and math.isfinite(period)):
            raise ValueError(text)
        return RateLimit(capacity=int(parts[0]), refill=refill, period=period)
    except (ValueError, InvalidArgumentError):
        raise argparse.ArgumentTypeError(
            "CAPACITY, REFILL and PERIOD must be finite numbers > 0"
        ) from None


_VERSION = re.compile(r"[a-z0-9.-]+")


def _version(text: str) -> str:
    """An API version as ``Accept: application/vnd.atlas.VERSION+json`` names it."""
    if _VERSION.fullmatch(text.lower()) is None:
        raise argparse.ArgumentTypeError("expected a version such as 2023-01-01")
    return text.lower()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiokeys.testing",
        description="Serve a simulated MongoDB Atlas (AI model API keys) on loopback.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface (default 127.0.0.1); one that is not loopback is warned "
        "about, since the credentials printed work for whoever reaches it",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port (default: a free one)"
    )
    parser.add_argument(
        "--orgs", type=int, default=1, help="organizations to create (default 1)"
    )
    parser.add_argument(
        "--keys", type=int, default=100, help="keys per organization (default 100)"
    )
    parser.add_argument(
        "--groups", type=int, default=3, help="projects per organization (default 3)"
    )
    parser.add_argument(
        "--seed", default="0", help="seed for the generated keys (default 0)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every answer"
    )
    parser.add_argument(
        "--digest", type=_pair, metavar="PUB:PRIV", help="Digest API key to accept"
    )
    parser.add_argument(
        "--client", type=_pair, metavar="ID:SECRET", help="service account to accept"
    )
    parser.add_argument("--token", help="Bearer token to accept")
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        metavar="CAPACITY/REFILL/PERIOD",
        help="token bucket per org and per project: CAPACITY requests at once, "
        "REFILL more back every PERIOD seconds, e.g. 10/5/60 (default: no limit)",
    )
    parser.add_argument(
        "--retired-version",
        type=_version,
        action="append",
        default=[],
        metavar="VERSION",
        help="answer this API version with 410 VERSION_GONE, e.g. 2023-01-01 "
        "(repeatable)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON line instead of text"
    )
    return parser


def _generated(args: argparse.Namespace) -> None:
    if args.digest is None:
        args.digest = (secrets.token_hex(4), secrets.token_hex(16))
    if args.client is None:
        args.client = (
            f"mdb_sa_id_{secrets.token_hex(12)}",
            f"mdb_sa_sk_{secrets.token_hex(16)}",
        )
    if args.token is None:
        args.token = secrets.token_urlsafe(32)


def _banner(atlas: FakeAtlas, orgs: list[str], args: argparse.Namespace) -> str:
    digest, client = ":".join(args.digest), ":".join(args.client)
    if args.json:
        info = {
            "url": atlas.url,
            "orgs": orgs,
            "token": args.token,
            "digest": digest,
            "client": client,
        }
        return json.dumps(info)
    # The examples use versions that still answer, unless none does.
    usable = [v for v in SERVED_VERSIONS if v not in args.retired_version]
    media = [f"application/vnd.atlas.{v}+json" for v in usable or SERVED_VERSIONS]
    accept = f"Accept: {media[0]}" + "".join(f" (or {m})" for m in media[1:])
    lines = [
        f"FakeAtlas serving on {atlas.url}",
        f"orgs ({args.keys} keys each): {' '.join(orgs)}",
        f"digest (--user, --digest): {digest}",
        f"service account (POST {atlas.url}/api/oauth/token): {client}",
        f"bearer token: {args.token}",
        accept if usable else "Accept: every served version is retired (410)",
        *_limits(args),
    ]
    if orgs:
        lines += _examples(atlas.url, orgs[0], digest, args.token, media)
    lines.append("Ctrl-C to stop.")
    return "\n".join(lines)


def _limits(args: argparse.Namespace) -> list[str]:
    """Banner lines for the rate limit and the retired versions, if any."""
    lines = []
    limit: RateLimit | None = args.rate_limit
    if limit is not None:
        lines.append(
            f"rate limit per org and per project: {limit.capacity} requests, "
            f"{limit.refill:g} more every {limit.period:g} s "
            "(RateLimit-Limit/RateLimit-Remaining headers, 429 with Retry-After)"
        )
    if args.retired_version:
        retired = " ".join(args.retired_version)
        lines.append(f"retired versions (410 VERSION_GONE): {retired}")
    return lines


def _examples(
    url: str, org_id: str, digest: str, token: str, media: list[str]
) -> list[str]:
    """Two curl lines that list the org's keys: Digest, then Bearer."""
    keys = f"{url}/api/atlas/v2/orgs/{org_id}/aiModelApiKeys"
    return [
        "try:",
        f'  curl --user {digest} --digest --header "Accept: {media[-1]}" "{keys}?pretty=true"',
        f'  curl --header "Authorization: Bearer {token}" --header "Accept: {media[0]}" "{keys}"',
    ]


def _exposed(host: str) -> list[str]:
    """The addresses ``host`` would listen on that are not loopback.

    ``""`` listens on every interface. A name that does not resolve gives none:
    the bind fails and says why.
    """
    if not host:
        return ["every interface"]
    try:
        found = socket.getaddrinfo(
            host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError:
        return []
    exposed = set()
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_loopback:
            exposed.add(str(sockaddr[0]))
    return sorted(exposed)


def _warn_if_exposed(host: str) -> None:
    """Say on stderr when the server will be reachable from off this machine."""
    exposed = _exposed(host)
    if exposed:
        print(
            f"warning: --host {host!r} listens on {', '.join(exposed)}, which is "
            "not loopback: whoever reaches it can use the credentials printed "
            "on stdout. The simulator is meant for 127.0.0.1 or ::1.",
            file=sys.stderr,
        )


async def _serve(args: argparse.Namespace) -> None:
    async with FakeAtlas(
        host=args.host,
        port=args.port,
        latency=args.latency,
        rate_limit=args.rate_limit,
        retired_versions=args.retired_version,
    ) as atlas:
        orgs = [atlas.add_org() for _ in range(args.orgs)]
        for org_id in orgs:
            # Nobody reads the dicts here: a bulk load that builds none of them.
            atlas._state.store.seed(
                org_id, args.keys, args.groups, args.seed, records=False
            )
        atlas.add_digest_user(*args.digest)
        atlas.add_service_account(*args.client)
        atlas.add_bearer_token(args.token)
        print(_banner(atlas, orgs, args), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        trimmer = asyncio.create_task(_trim_log(atlas))
        await stop.wait()
        trimmer.cancel()


async def _trim_log(atlas: FakeAtlas) -> None:
    """Nobody reads the request log of a standalone server: keep it from growing."""
    while True:
        await asyncio.sleep(30.0)
        atlas.clear_requests()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, serve until a signal, return the exit status."""
    args = _parser().parse_args(argv)
    if args.orgs < 0 or args.keys < 0 or args.groups < 1:
        print("--orgs and --keys must be >= 0, --groups >= 1", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print("--port must be between 0 and 65535", file=sys.stderr)
        return 2
    _generated(args)
    _warn_if_exposed(args.host)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"cannot listen on {_url_host(args.host)}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
