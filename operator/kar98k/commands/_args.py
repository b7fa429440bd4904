"""argparse value types shared by the commands (errors read `argument --flag: must be ...`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from kar98k_loadpod.durations import parse_duration


def duration(text: str) -> float:
    """A duration like 30s, 5m or 1h30m, in seconds; must be > 0."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return seconds


def non_negative_int(expected: str) -> Callable[[str], int]:
    """An integer >= 0; anything else fails with `must be {expected}, got '{text}'`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return parse
