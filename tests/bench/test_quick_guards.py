"""The quick bench's verdict (bench/guards.py): which figures pass, which regress, and why.

A run's JSON is built here with the fields the guards read; a broken guard (a bound on the
wrong side, a missing figure taken for a pass) fails one of these.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

import guards

REFERENCE = {
    "figures": {
        "HTTP/1.1 ceiling / wrk": 0.30,
        "pod CPU per request at 5,000/s": 30.0,
        "accuracy, worst uniform |achieved/target - 1|": 0.0005,
        "agility, worst rate change in force": 10.0,
    }
}


def run(
    *, ceiling: float = 30_000.0, cpu: float = 0.15, ratio: float = 1.0, worst_ms: float = 10.0
) -> dict[str, Any]:
    """A quick run's JSON: wrk 100k/s; at 5,000/s the pod completed 5,000/s using `cpu`."""
    step = {"foreignCpu": 0.1, "foreignServerCpu": 0.2}
    return {
        "http": {
            "reference": {"wrk": 100_000.0},
            "ceiling": {"fast": {"ceiling": ceiling, "steps": [step]}},
            "accuracy": [
                {
                    "arrival": "uniform",
                    "planned": 1000.0,
                    "achievedRatio": 1.0,
                    "podCpu": 0.05,
                    "podRate": 1000.0,
                },
                {
                    "arrival": "uniform",
                    "planned": 5000.0,
                    "achievedRatio": ratio,
                    "podCpu": cpu,
                    "podRate": 5000.0,
                },
            ],
        },
        "agility": {"worstInForceMs": worst_ms},
    }


def verdicts(out: dict[str, Any]) -> list[bool]:
    _, lines = guards.check(out, REFERENCE)
    return [line.startswith("PASS") for line in lines]


def test_figures_at_the_reference_pass() -> None:
    passed, lines = guards.check(run(), REFERENCE)
    assert passed
    assert len(lines) == len(guards.GUARDS)
    assert "others took 10% / 20%" in lines[0]


@pytest.mark.parametrize(
    ("out", "failing"),
    [
        (run(ceiling=17_000.0), 0),  # 0.17 < 0.30 x 0.6
        (run(cpu=0.20), 1),  # 40 µs > 30 µs x 1.3
        (run(ratio=0.985), 2),  # 1.5 % off target
        (run(worst_ms=120.0), 3),  # beyond the 90 ms bound
    ],
)
def test_each_regression_fails_its_own_guard_only(out: dict[str, Any], failing: int) -> None:
    expected = [True] * len(guards.GUARDS)
    expected[failing] = False
    assert verdicts(out) == expected
    assert not guards.check(out, REFERENCE)[0]


def test_moves_inside_the_tolerance_and_improvements_pass() -> None:
    assert all(verdicts(run(ceiling=19_000.0, cpu=0.19, worst_ms=80.0)))  # 0.19, 38 µs
    assert all(verdicts(run(ceiling=60_000.0, cpu=0.05, worst_ms=1.0)))


def test_a_figure_not_measured_fails() -> None:
    out = run(ceiling=0.0)  # no rate held the confirmation window
    assert verdicts(out)[0] is False
    assert "not measured" in guards.check(out, REFERENCE)[1][0]


def test_reference_round_trip(tmp_path: Path) -> None:
    out = run() | {"when": "now", "machine": {"commit": "abc"}}
    path = tmp_path / "ref.json"
    guards.save_reference(out, path)
    stored = guards.load_reference(path)
    assert stored["figures"]["pod CPU per request at 5,000/s"] == pytest.approx(30.0)
    assert guards.check(out, stored)[0]
    assert guards.load_reference(tmp_path / "missing.json") == {}
