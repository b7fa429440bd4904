"""Report fixtures: a realistic RunSummary built by hand (tests/kit/summaries.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kar98k.results import RunSummary
from kit.summaries import make_summary


@pytest.fixture
def summary() -> RunSummary:
    return make_summary()


@pytest.fixture
def make() -> Callable[..., RunSummary]:
    """The factory itself, for tests that need variants (names, passing runs, lengths)."""
    return make_summary
