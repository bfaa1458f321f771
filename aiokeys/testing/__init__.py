"""An in-process Atlas simulator for tests: :class:`FakeAtlas` (placeholder)."""
