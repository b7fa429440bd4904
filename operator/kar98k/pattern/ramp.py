"""R(t): the start-up ramp, linear from 0 to 1 over `rampUp`."""

from __future__ import annotations


def ramp(elapsed: float, ramp_up: float) -> float:
    """0 at t = 0, 1 from t = rampUp on; 1 throughout when there is no ramp."""
    if ramp_up <= 0:
        return 1.0
    if elapsed <= 0:
        return 0.0
    if elapsed >= ramp_up:
        return 1.0
    return elapsed / ramp_up
