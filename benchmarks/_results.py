"""What a benchmark run collects: table rows, the scaling series and the aims."""

from __future__ import annotations

import attrs

from ._config import Settings
from ._stats import Stats

__all__ = ["Aim", "Results", "Row"]


@attrs.frozen(kw_only=True)
class Row:
    """One line of a scenario's table."""

    section: str
    label: str
    stats: Stats
    unit: str
    compare: str = ""


@attrs.frozen(kw_only=True)
class Aim:
    """One of the plan's aims and where the run stands against it."""

    aim: str
    measured: str
    met: bool


@attrs.define(kw_only=True)
class Results:
    """Everything one run measured, filled in scenario by scenario."""

    settings: Settings
    rows: list[Row] = attrs.Factory(list)
    aims: list[Aim] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
    #: contender -> pages -> wall time; the plot's lines.
    scaling: dict[str, dict[int, Stats]] = attrs.Factory(dict)
    ideal: dict[int, float] = attrs.Factory(dict)
    profile: str = ""
    elapsed: float = 0.0
    #: One-minute load averages around the run: other work on the machine skews it.
    load_before: float = 0.0
    load_after: float = 0.0

    def add(
        self, section: str, label: str, stats: Stats, unit: str, compare: str = ""
    ) -> None:
        """Append one table row."""
        self.rows.append(
            Row(section=section, label=label, stats=stats, unit=unit, compare=compare)
        )

    def aim(self, aim: str, measured: str, *, met: bool) -> None:
        """Record where the run stands against one aim."""
        self.aims.append(Aim(aim=aim, measured=measured, met=met))
