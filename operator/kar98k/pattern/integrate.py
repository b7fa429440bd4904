"""How many requests a pattern asks for over a window: the integral of rate(t)."""

from __future__ import annotations

from .engine import PatternEngine


def expected_requests(engine: PatternEngine, start: float, end: float, step: float = 0.1) -> float:
    """∫ rate dt over [start, end] as a left Riemann sum at `step`.

    Left points match the controller, which holds each tick's rate until the next tick; the
    last slice is shortened to end exactly at `end`.
    """
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    if end <= start:
        return 0.0
    total = 0.0
    index = 0
    while True:
        left = start + index * step
        if left >= end - 1e-12:
            return total
        width = min(step, end - left)
        total += engine.at(left).rate * width
        index += 1
