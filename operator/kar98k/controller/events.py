"""What the controller tells its listener (a live view, a log, Kubernetes events)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .clock import RunClock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerEvent:
    """Something a live view, a log or Kubernetes events should tell the user.

    kinds: started, spike-begin, spike-end, pod-lost, pod-joined, threshold-breach, paused,
    resumed, finished, safety-tripped, safety-closed (spec.safety's breaker); a capacity search
    adds search-step and search-result.
    """

    kind: str
    message: str
    elapsed_s: float = 0.0


class Events:
    """Logs each event and hands it to the listener, stamped with the run's elapsed time."""

    def __init__(
        self, name: str, clock: RunClock, listener: Callable[[ControllerEvent], None] | None
    ) -> None:
        self._name = name
        self._clock = clock
        self._listener = listener

    def emit(self, kind: str, message: str) -> None:
        elapsed = self._clock.elapsed_now() if self._clock.running else 0.0
        event = ControllerEvent(kind, message, elapsed)
        log.info("%s: %s", self._name, message)
        if self._listener is None:
            return
        try:
            self._listener(event)
        except Exception:  # a broken listener must not break the run
            log.exception("%s: event listener failed on %s", self._name, kind)
