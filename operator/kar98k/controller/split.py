"""Split one target rate over the ready pods so the shares add up to the target.

Why floats and not integers: a pod paces fractional rates (1.5 req/s is a 667 ms gap), so
rounding shares to whole requests would throw away up to one request per second per pod and,
at low rates with many pods, most of the load.

Why the last pod takes "the rest": `total / n` added n times need not give `total` in binary
floating point. The last share is the correctly rounded `total - (sum of the others)`
(computed with `math.fsum`, so without intermediate rounding), then nudged by a unit in the
last place if needed, so that `math.fsum(shares) == total` holds exactly: the exact sum of the
shares rounds to the target. Shares differ by at most a few ulps; no pod is favoured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_MAX_NUDGES = 4


def split_rate(total: float, names: Sequence[str]) -> dict[str, float]:
    """Equal shares of `total` for `names` (in the given order); empty when there are no pods."""
    if not names:
        return {}
    if total <= 0:
        return dict.fromkeys(names, 0.0)
    each = total / len(names)
    others = [each] * (len(names) - 1)
    rest = max(0.0, math.fsum([total, *(-x for x in others)]))
    for _ in range(_MAX_NUDGES):
        got = math.fsum([*others, rest])
        if got == total:
            break
        rest = max(0.0, math.nextafter(rest, math.inf if got < total else -math.inf))
    shares = dict.fromkeys(names[:-1], each)
    shares[names[-1]] = rest
    return shares
