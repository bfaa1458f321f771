"""One listing in a fresh interpreter, reporting its peak RSS as one JSON line.

Run by the memory scenario as
``python -m benchmarks._memchild URL ORG_ID CONTENDER PAGE_SIZE CONCURRENCY``
with the bearer token in ``AIOKEYS_BENCH_TOKEN`` (never on the command line).
A fresh process per measurement keeps one run's heap out of the next one's peak.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys

import psutil

from ._contenders import Outcome, Target, aiokeys_listing, gather_listing

__all__ = ["TOKEN_ENV", "main"]

TOKEN_ENV = "AIOKEYS_BENCH_TOKEN"


async def _run(name: str, target: Target) -> Outcome:
    if name == "aiokeys":
        return await aiokeys_listing(target, ordered=True)
    if name == "aiokeys-unordered":
        return await aiokeys_listing(target, ordered=False)
    if name == "gather":
        return await gather_listing(target)
    raise SystemExit(f"unknown contender {name!r}")


def main(argv: list[str]) -> int:
    """Run the listing named in ``argv`` and print baseline and peak RSS in bytes."""
    url, org_id, name, page_size, concurrency = argv
    target = Target(
        url=url,
        token=os.environ[TOKEN_ENV],
        org_ids=(org_id,),
        page_size=int(page_size),
        concurrency=int(concurrency),
    )
    baseline = psutil.Process().memory_info().rss
    outcome = asyncio.run(_run(name, target))
    print(json.dumps({"baseline": baseline, "peak": _peak_rss(), "keys": outcome.keys}))
    return 0


def _peak_rss() -> int:
    """This process's peak RSS in bytes.

    ``ru_maxrss`` survives ``exec``: a child forked from a big parent reports the
    parent's size. Linux's ``VmHWM`` belongs to the new address space, so it is
    read first; ``ru_maxrss`` (KiB on Linux) is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
