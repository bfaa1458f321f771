"""The public :class:`Client` (placeholder until the listing engine lands)."""

from __future__ import annotations

__all__ = ["Client"]


class Client:
    """Placeholder; replaced by the listing engine."""
