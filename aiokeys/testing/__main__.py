"""Run the Atlas simulator standalone: ``python -m aiokeys.testing``.

Prints the base URL, the organization ids and the credentials to use (or, with
``--json``, one JSON line ``{"url", "orgs", "token", "digest", "client"}``),
then serves until SIGINT or SIGTERM. Credentials not given on the command line
are generated. ``digest`` is ``"PUBLIC:PRIVATE"`` and ``client`` is
``"CLIENT_ID:CLIENT_SECRET"``, ready for ``curl --user``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import sys
from collections.abc import Sequence

from ._atlas import FakeAtlas, _url_host

__all__ = ["main"]


def _pair(text: str) -> tuple[str, str]:
    left, sep, right = text.partition(":")
    if not sep or not left or not right:
        raise argparse.ArgumentTypeError("expected NAME:SECRET")
    return left, right


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiokeys.testing",
        description="Serve a simulated MongoDB Atlas (AI model API keys) on loopback.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface (default 127.0.0.1)"
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
    lines = [
        f"FakeAtlas serving on {atlas.url}",
        f"orgs ({args.keys} keys each): {' '.join(orgs)}",
        f"digest (--user, --digest): {digest}",
        f"service account (POST {atlas.url}/api/oauth/token): {client}",
        f"bearer token: {args.token}",
        "Accept: application/vnd.atlas.2025-03-12+json (or application/vnd.atlas.preview+json)",
    ]
    if orgs:
        lines += _examples(atlas.url, orgs[0], digest, args.token)
    lines.append("Ctrl-C to stop.")
    return "\n".join(lines)


def _examples(url: str, org_id: str, digest: str, token: str) -> list[str]:
    keys = f"{url}/api/atlas/v2/orgs/{org_id}/aiModelApiKeys"
    return [
        "try:",
        f'  curl --user {digest} --digest --header "Accept: application/vnd.atlas.preview+json" "{keys}?pretty=true"',
        f'  curl --header "Authorization: Bearer {token}" --header "Accept: application/vnd.atlas.2025-03-12+json" "{keys}"',
    ]


async def _serve(args: argparse.Namespace) -> None:
    async with FakeAtlas(host=args.host, port=args.port, latency=args.latency) as atlas:
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
    _generated(args)
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
