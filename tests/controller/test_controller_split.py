"""Rate split: equal float shares whose exact sum rounds to the target."""

from __future__ import annotations

import math
import random

from kar98k.controller.split import split_rate


def test_no_pods_no_shares() -> None:
    assert split_rate(100.0, []) == {}


def test_zero_or_negative_rate_gives_zero_shares() -> None:
    assert split_rate(0.0, ["a", "b"]) == {"a": 0.0, "b": 0.0}
    assert split_rate(-1.0, ["a"]) == {"a": 0.0}


def test_single_pod_takes_everything() -> None:
    assert split_rate(123.456, ["only"]) == {"only": 123.456}


def test_order_and_names_are_kept() -> None:
    assert list(split_rate(10.0, ["b", "a", "c"])) == ["b", "a", "c"]


def test_shares_sum_exactly_to_the_target() -> None:
    rng = random.Random(4)
    for _ in range(20_000):
        total = rng.choice([rng.uniform(0, 10), rng.uniform(0, 1e4), rng.uniform(0, 1e6)])
        names = [f"p{i}" for i in range(rng.randint(1, 40))]
        shares = split_rate(total, names)
        assert math.fsum(shares.values()) == total
        assert all(s >= 0 for s in shares.values())
        assert max(shares.values()) - min(shares.values()) <= 1e-9 * total


def test_known_awkward_case() -> None:
    shares = split_rate(333.3, [str(i) for i in range(7)])
    assert math.fsum(shares.values()) == 333.3
