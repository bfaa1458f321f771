"""Shared test configuration: the simulator fixtures come from the public plugin."""

from __future__ import annotations

pytest_plugins = ["aiokeys.testing.pytest_plugin"]
