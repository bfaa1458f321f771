"""The seven scenarios of the benchmark plan, each filling :class:`Results`.

Every scenario starts its own simulator process sized for it, runs one
discarded warm-up listing, then interleaves the contenders run by run (A, B, C,
A, B, C, ...) so that a slow minute of the machine hurts all of them alike.
Every run checks that it saw exactly the number of keys seeded.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiokeys

from ._config import Settings
from ._contenders import (
    CONTENDERS,
    Contender,
    Outcome,
    Target,
    aiokeys_listing,
    aiokeys_many_orgs,
    ideal_seconds,
)
from ._decode import CLIENT_PATH, HAND_PATH, fetch_bodies, measure_decoders, profile
from ._memchild import TOKEN_ENV
from ._results import Results
from ._sim import SimInfo, simulator
from ._stats import Stats

__all__ = ["run_all"]

_ROOT = Path(__file__).resolve().parents[1]
_MIB = 1024 * 1024
_MEMORY_CONTENDERS = ("aiokeys", "gather")


def _target(sim: SimInfo, *, page_size: int, concurrency: int) -> Target:
    return Target(
        url=sim.url,
        token=sim.token,
        org_ids=sim.orgs,
        page_size=page_size,
        concurrency=concurrency,
    )


def _round_robin(
    target: Target,
    contenders: Sequence[tuple[str, Contender]],
    *,
    runs: Callable[[str], int],
    expect: int,
) -> dict[str, list[Outcome]]:
    """Run each contender ``runs(name)`` times, interleaved, each on a fresh loop."""
    asyncio.run(aiokeys_listing(target, ordered=True))  # warm-up, discarded
    outcomes: dict[str, list[Outcome]] = {name: [] for name, _ in contenders}
    for attempt in range(max(runs(name) for name, _ in contenders)):
        for name, contender in contenders:
            if attempt >= runs(name):
                continue
            outcome = asyncio.run(contender(target))
            if outcome.keys != expect:
                raise RuntimeError(f"{name} saw {outcome.keys} keys, not {expect}")
            outcomes[name].append(outcome)
    return outcomes


def _walls(outcomes: list[Outcome]) -> Stats:
    return Stats(samples=tuple(o.seconds for o in outcomes))


def _run_counts(settings: Settings, *, few: bool) -> Callable[[str], int]:
    """Runs per contender: the walk gets ``big_runs`` at the largest page count."""

    def runs(name: str) -> int:
        return settings.big_runs if few and "walk" in name else settings.runs

    return runs


def run_scaling(settings: Settings, results: Results) -> None:
    """Scenarios 1, 2 and 7: wall time against pages at a fixed latency."""
    biggest = max(settings.scaling_pages)
    for pages in settings.scaling_pages:
        keys = pages * settings.page_size
        _say(f"  {pages} pages")
        with simulator(orgs=1, keys=keys, latency=settings.latency) as sim:
            target = _target(
                sim, page_size=settings.page_size, concurrency=settings.concurrency
            )
            few = pages == biggest and pages > settings.headline_pages
            outcomes = _round_robin(
                target, CONTENDERS, runs=_run_counts(settings, few=few), expect=keys
            )
        ideal = ideal_seconds(
            latency=settings.latency, pages=pages, concurrency=settings.concurrency
        )
        results.ideal[pages] = ideal
        for name, runs in outcomes.items():
            wall = _walls(runs)
            results.scaling.setdefault(name, {})[pages] = wall
            results.add(
                "2. scaling",
                f"{name}, {pages} pages",
                wall,
                "s",
                f"{wall.median / ideal:.2f}x ideal",
            )
        if pages == settings.headline_pages:
            _headline(settings, results, outcomes, ideal)


def _headline(
    settings: Settings,
    results: Results,
    outcomes: dict[str, list[Outcome]],
    ideal: float,
) -> None:
    """Scenario 1 (latency-bound ratios) and 7 (time to first key) from one page count."""
    section = (
        f"1. latency-bound: {settings.headline_pages} pages x {settings.page_size} keys,"
        f" {settings.latency * 1000:g} ms, concurrency {settings.concurrency}"
    )
    walk = _walls(outcomes["walk (aiohttp)"]).median
    results.add(section, "ideal", Stats(samples=(ideal,)), "s", "1.00x ideal")
    for name, runs in outcomes.items():
        wall = _walls(runs)
        results.add(
            section,
            name,
            wall,
            "s",
            f"{wall.median / ideal:.2f}x ideal; walk is {walk / wall.median:.1f}x this",
        )
    for name in ("aiokeys ordered", "aiokeys unordered"):
        median = _walls(outcomes[name]).median
        results.aim(
            f"latency-bound {name} within 1.10x of ideal",
            f"{median:.3f} s vs {ideal:.3f} s = {median / ideal:.2f}x",
            met=median <= 1.10 * ideal,
        )
        results.aim(
            f"{name} at least 10x faster than the walk",
            f"walk {walk:.2f} s / {median:.3f} s = {walk / median:.1f}x",
            met=walk >= 10 * median,
        )
    _first_key(results, outcomes)


def _first_key(results: Results, outcomes: dict[str, list[Outcome]]) -> None:
    section = "7. time to first key (same runs as 1)"
    firsts = {
        name: Stats(samples=tuple(o.first_key * 1000 for o in runs))
        for name, runs in outcomes.items()
        if "gather" not in name
    }
    walk = firsts["walk (aiohttp)"].median
    for name, stats in firsts.items():
        results.add(section, name, stats, "ms", f"{stats.median / walk:.2f}x walk")
    first = firsts["aiokeys ordered"].median
    results.aim(
        "time to first key: aiokeys no later than the walk (+10%)",
        f"{first:.1f} ms vs walk {walk:.1f} ms",
        met=first <= 1.10 * walk,
    )


def run_cpu(settings: Settings, results: Results, *, with_profile: bool) -> None:
    """Scenarios 3 and 5: throughput and decode cost with no added latency, and stalls."""
    keys = settings.cpu_keys
    section = f"3. CPU-bound: {keys:,} keys, no added latency"
    with simulator(orgs=1, keys=keys, latency=0.0) as sim:
        target = _target(
            sim, page_size=settings.page_size, concurrency=settings.concurrency
        )
        outcomes = _round_robin(
            target, CONTENDERS, runs=lambda _: settings.runs, expect=keys
        )
        for name, runs in outcomes.items():
            results.add(
                section, f"end to end: {name}", _walls(runs).inverted(keys), "keys/s"
            )
        bodies = asyncio.run(fetch_bodies(target))
        _decode_rows(settings, results, section, bodies)
        _stalls(settings, results, target)
        if with_profile:
            results.profile = profile(target, bodies)


def _decode_rows(
    settings: Settings, results: Results, section: str, bodies: list[bytes]
) -> None:
    rates = measure_decoders(bodies, runs=settings.runs)
    floor = rates["orjson -> dicts"].median
    for name, stats in rates.items():
        results.add(
            section,
            f"decode only: {name}",
            stats,
            "keys/s",
            f"{1e6 / stats.median:.2f} us a key, {floor / stats.median:.1f}x orjson-dicts",
        )
    hand = rates[HAND_PATH].median
    ours = rates[CLIENT_PATH].median
    per_key = (1 / ours - 1 / hand) * 1e6
    results.aim(
        "decode overhead: aiokeys' page decoder within 1.25x of a hand-written one"
        " (both on stdlib json)",
        f"{hand / ours:.2f}x the time, {per_key:+.2f} us a key",
        met=hand / ours <= 1.25,
    )


async def _ticker(stop: asyncio.Event) -> float:
    """Sleep 1 ms again and again; return the worst lateness seen, in seconds."""
    worst = 0.0
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        worst = max(worst, now - last - 0.001)
        last = now
    return worst


async def _stall_run(contender: Contender, target: Target) -> float:
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(stop))
    await asyncio.sleep(0.01)
    try:
        await contender(target)
    finally:
        stop.set()
    return await ticker


def _stalls(settings: Settings, results: Results, target: Target) -> None:
    section = f"5. event-loop stall: worst lateness of a 1 ms ticker, {settings.cpu_keys:,} keys"
    # The gather's stall (hundreds of ms) is known; it is left out to save time.
    contenders = [(n, c) for n, c in CONTENDERS if "gather" not in n]
    worst: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(settings.runs):
        for name, contender in contenders:
            worst[name].append(asyncio.run(_stall_run(contender, target)) * 1000)
    for name, samples in worst.items():
        results.add(section, name, Stats(samples=tuple(samples)), "ms")
    for name in ("aiokeys ordered", "aiokeys unordered"):
        top = max(worst[name])
        results.aim(
            f"no event-loop stall over 20 ms ({name}, worst of all runs)",
            f"{top:.1f} ms (median {Stats(samples=tuple(worst[name])).median:.1f} ms)",
            met=top <= 20.0,
        )


def _memory_child(sim: SimInfo, name: str, settings: Settings) -> dict[str, int]:
    """One listing in a fresh interpreter; its baseline and peak RSS in bytes."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks._memchild",
        sim.url,
        sim.orgs[0],
        name,
        str(settings.page_size),
        str(settings.concurrency),
    ]
    env = {**os.environ, TOKEN_ENV: sim.token}
    done = subprocess.run(
        cmd, cwd=_ROOT, env=env, capture_output=True, text=True, check=True
    )
    report: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def run_memory(settings: Settings, results: Results) -> None:
    """Scenario 4: peak RSS of a fresh process listing N keys, for two N."""
    section = "4. memory: peak RSS of a fresh process (growth over its baseline)"
    peaks: dict[tuple[str, int], float] = {}
    for keys in settings.memory_keys:
        _say(f"  {keys:,} keys")
        with simulator(orgs=1, keys=keys, latency=0.0) as sim:
            for name in _MEMORY_CONTENDERS:
                reports = [
                    _memory_child(sim, name, settings)
                    for _ in range(settings.memory_runs)
                ]
                if any(r["keys"] != keys for r in reports):
                    raise RuntimeError(f"{name} did not list {keys} keys")
                peak = Stats(samples=tuple(r["peak"] / _MIB for r in reports))
                growth = Stats(
                    samples=tuple((r["peak"] - r["baseline"]) / _MIB for r in reports)
                )
                peaks[name, keys] = peak.median
                results.add(
                    section,
                    f"{name}, {keys:,} keys",
                    peak,
                    "MiB",
                    f"growth {growth.median:.1f} MiB",
                )
    small, big = settings.memory_keys
    for name in _MEMORY_CONTENDERS:
        ratio = peaks[name, big] / peaks[name, small]
        results.aim(
            f"memory {name}: {big:,} keys within 1.2x of {small:,}",
            f"{peaks[name, big]:.0f} / {peaks[name, small]:.0f} MiB = {ratio:.2f}x",
            met=ratio <= 1.2,
        )


def run_many_orgs(settings: Settings, results: Results) -> None:
    """Scenario 6: many small orgs on one client with a shared budget."""
    per_org = settings.many_keys_per_org
    with simulator(
        orgs=settings.many_orgs, keys=per_org, latency=settings.latency
    ) as sim:
        target = _target(
            sim,
            page_size=settings.many_page_size,
            concurrency=settings.many_concurrency,
        )
        contenders = _many_contenders()
        outcomes = _round_robin(
            target,
            contenders,
            runs=lambda _: settings.runs,
            expect=settings.many_orgs * per_org,
        )
    pages = settings.many_orgs * settings.many_pages
    ideal = ideal_seconds(
        latency=settings.latency, pages=pages, concurrency=settings.many_concurrency
    )
    section = (
        f"6. many orgs: {settings.many_orgs} orgs x {settings.many_pages} pages of"
        f" {settings.many_page_size}, {settings.latency * 1000:g} ms,"
        f" concurrency {settings.many_concurrency}"
    )
    results.add(
        section, f"ideal ({pages} pages)", Stats(samples=(ideal,)), "s", "1.00x ideal"
    )
    for name, runs in outcomes.items():
        wall = _walls(runs)
        results.add(section, name, wall, "s", f"{wall.median / ideal:.2f}x ideal")
        results.aim(
            f"many orgs, {name}: within 1.10x of ideal",
            f"{wall.median:.2f} s vs {ideal:.2f} s = {wall.median / ideal:.2f}x",
            met=wall.median <= 1.10 * ideal,
        )


def _many_contenders() -> list[tuple[str, Contender]]:
    async def per_org(target: Target) -> Outcome:
        return await aiokeys_many_orgs(target, bulk=False)

    async def bulk(target: Target) -> Outcome:
        return await aiokeys_many_orgs(target, bulk=True)

    contenders: list[tuple[str, Contender]] = [("aiokeys, one stream per org", per_org)]
    if hasattr(aiokeys.Client, "keys_for_orgs"):
        contenders.append(("aiokeys keys_for_orgs", bulk))
    return contenders


def _say(message: str) -> None:
    """Progress on stderr: a full run takes minutes."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_all(
    settings: Settings,
    *,
    only: frozenset[int] | None = None,
    with_profile: bool = False,
) -> Results:
    """Every scenario (or those in ``only``); memory first, while this process is small."""
    wanted = only or frozenset(range(1, 8))
    results = Results(settings=settings, load_before=os.getloadavg()[0])
    start = time.perf_counter()
    if 4 in wanted:
        _say("scenario 4: memory")
        run_memory(settings, results)
    if wanted & {1, 2, 7}:
        _say("scenarios 1, 2, 7: latency-bound scaling")
        run_scaling(settings, results)
    if 6 in wanted:
        _say("scenario 6: many orgs")
        run_many_orgs(settings, results)
    if wanted & {3, 5}:
        _say("scenarios 3, 5: CPU-bound and event-loop stall")
        run_cpu(settings, results, with_profile=with_profile)
    results.elapsed = time.perf_counter() - start
    results.load_after = os.getloadavg()[0]
    _say(f"done in {results.elapsed / 60:.1f} min")
    return results
