"""Shared by the property-based tests of the spec and of plans: hostile JSON-like values and a
way to plant one at a path of a document."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

Path = tuple[str | int, ...]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 2**63, -(2**63)]),
    st.text(max_size=40),
    st.sampled_from(
        [
            *("America", "9" * 500 + "s", "1e309s", ".5ms", "0", "-1s", "1h1h", "\x00"),
            *("a\r\nb", "${KAR98K_TOKEN}", "NaN", "poisson"),
        ]
    ),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def plant(doc: dict[str, Any], mutations: list[tuple[Path, Any]]) -> None:
    """Set each value at its path; a path whose parent an earlier value replaced is skipped."""
    for path, value in mutations:
        node: Any = doc
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (TypeError, KeyError, IndexError):
            continue


def numbers_in(value: Any) -> list[float]:
    """Every number (bools aside) in a JSON-like value; ints too large for a float count as inf."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)] if abs(value) < 1e300 else [math.inf]
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers_in(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers_in(v)]
    return []
