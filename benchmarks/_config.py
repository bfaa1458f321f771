"""What each scenario runs: the full sizes of the benchmark plan, or tiny ones.

The full settings follow the plan (50 ms, 500 keys a page, concurrency 16, five
runs). The page-by-page walk over 1,000 pages takes about a minute a run and is
latency x pages by construction, so it gets ``big_runs`` runs instead of
``runs``; peak RSS barely moves between runs, so memory gets ``memory_runs``.
"""

from __future__ import annotations

import attrs

__all__ = ["FULL", "QUICK", "Settings"]


@attrs.frozen(kw_only=True)
class Settings:
    """Sizes, latencies and run counts for one benchmark run."""

    name: str
    runs: int = 5
    big_runs: int = 2
    memory_runs: int = 3
    latency: float = 0.05
    page_size: int = 500
    concurrency: int = 16
    scaling_pages: tuple[int, ...] = (1, 10, 100, 1000)
    headline_pages: int = 100
    cpu_keys: int = 200_000
    memory_keys: tuple[int, int] = (100_000, 1_000_000)
    many_orgs: int = 500
    many_pages: int = 3
    many_page_size: int = 100
    many_concurrency: int = 32

    @property
    def many_keys_per_org(self) -> int:
        """Keys per org giving ``many_pages`` pages, the last one half full."""
        return (self.many_pages - 1) * self.many_page_size + self.many_page_size // 2


FULL = Settings(name="full")

QUICK = Settings(
    name="quick",
    runs=1,
    big_runs=1,
    memory_runs=1,
    latency=0.005,
    page_size=50,
    concurrency=2,
    scaling_pages=(1, 3),
    headline_pages=3,
    cpu_keys=1_000,
    memory_keys=(500, 2_000),
    many_orgs=4,
    many_pages=3,
    many_page_size=10,
    many_concurrency=4,
)
