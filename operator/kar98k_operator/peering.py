"""Who acts among several operator replicas (kopf peering), and when the first may start.

kopf pauses every replica that sees a live peer of higher *or equal* priority. Priorities come
from the moment a replica's kopf startup ran, just before its peering keep-alive is first
posted: a replica that posts earlier ranks higher, so the replica already acting keeps the
lead when another joins (no needless handover mid-run). A priority from process start instead
let a replica that started earlier but reached the API later (a slow start on a busy node) take
over a run another had just begun.
"""

from __future__ import annotations

import random
import time

PRIORITY_EPOCH_MS = 10**13
# A SIGKILLed leader is presumed dead this long after its last keep-alive; then a standby
# replica takes over (its daemons resume every run from status). kopf's default is 60 s.
PEERING_LIFETIME = 10
# kopf re-posts a replica's keep-alive every lifetime - (5..10) s, at least 1 s apart: within
# 5 s here. Replicas that start together each see only themselves for a moment, and a peer's
# first keep-alive can go unseen (a watch still starting, an API server whose watch cache is
# initialising: the HA test saw its peer only at the second keep-alive, 5.0 s after startup).
# So no run is started before one whole keep-alive interval and a second have passed since
# our startup: by then every peer that started with us has been seen, and all but one paused.
MAX_KEEPALIVE_INTERVAL = PEERING_LIFETIME - 5
PEERING_GRACE = MAX_KEEPALIVE_INTERVAL + 1.0


def default_priority(now: float | None = None) -> int:
    """Higher for replicas whose kopf startup ran earlier; random last digits break ties
    between replicas started in the same millisecond (equal priorities pause everyone)."""
    started_ms = int((time.time() if now is None else now) * 1000)
    return (PRIORITY_EPOCH_MS - started_ms) * 1000 + random.randrange(1000)
