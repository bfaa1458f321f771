"""Samples and their summary: median with the min-max spread."""

from __future__ import annotations

import statistics

import attrs

__all__ = ["Stats"]


@attrs.frozen(kw_only=True)
class Stats:
    """Repeated measurements of one quantity (seconds, bytes or keys per second)."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median sample: what the tables report."""
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        """The smallest sample."""
        return min(self.samples)

    @property
    def high(self) -> float:
        """The largest sample."""
        return max(self.samples)

    @property
    def runs(self) -> int:
        """How many samples were taken."""
        return len(self.samples)

    def scaled(self, factor: float) -> Stats:
        """The same samples multiplied by ``factor`` (e.g. keys / seconds)."""
        return Stats(samples=tuple(s * factor for s in self.samples))

    def inverted(self, numerator: float) -> Stats:
        """``numerator / sample`` for each sample: turns seconds into a rate."""
        return Stats(samples=tuple(numerator / s for s in self.samples))
