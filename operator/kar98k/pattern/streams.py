"""Counter-based random numbers: every draw is a pure function of (seed, stream, index).

A sequential generator would make value k depend on how many draws came before it, so a
restarted controller or an out-of-order read would see a different curve. Hashing the
counter instead gives the same number no matter who asks, when, or in what order.
"""

from __future__ import annotations

import hashlib
import random

_TWO_POW_53 = float(1 << 53)


def derive(seed: int, stream: str, index: int) -> int:
    """A 64-bit integer that depends only on (seed, stream, index)."""
    key = f"kar98k:{seed}:{stream}:{index}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def uniform(seed: int, stream: str, index: int) -> float:
    """A uniform draw in the open interval (0, 1): never exactly 0 or 1, so log() is safe."""
    return ((derive(seed, stream, index) >> 11) + 0.5) / _TWO_POW_53


def block_generator(seed: int, stream: str, block: int) -> random.Random:
    """A fresh Mersenne Twister for one block of draws.

    Only `random()` is used from it: CPython guarantees that sequence for a given integer seed
    across versions, unlike `gauss()` and friends, whose algorithms may change.
    """
    return random.Random(derive(seed, stream, block))
