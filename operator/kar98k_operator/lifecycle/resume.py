"""Where a LoadTest's daemon picks up, decided from its spec and status alone.

The operator keeps nothing across restarts but what status holds: runId, phase, startTime, seed
and epoch say whether this runId is over (clean up, then wait for a new runId), still running
(resume the same curve, epochs above the last) or still to start. A fresh daemon and a restarted
operator therefore land in the same place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kar98k.spec import LoadTestSpec
from kar98k.spec.status import ACTIVE_PHASES, FINISHED_PHASES, LoadTestStatus, parse_time

from .bad_input import SPEC_FAILURES


@dataclass(frozen=True)
class Finished:
    """This runId has ended: only spec.cleanup remains, then a new runId starts a new run."""


@dataclass(frozen=True)
class Resume:
    """A run this runId started: continue its curve (same seed and t = 0, higher epochs)."""

    seed: int
    start_time: str
    epoch: int

    @property
    def start(self) -> datetime:
        return parse_time(self.start_time)


@dataclass(frozen=True)
class NewRun:
    """Start from scratch: children, barrier, a new t = 0. Epochs still continue above `epoch`."""

    epoch: int


def next_step(
    spec: LoadTestSpec,
    status: LoadTestStatus,
    *,
    generation: int,
    completed_reason: str | None,
) -> Finished | Resume | NewRun:
    same_run = status.run_id == spec.run_id
    # A failure the spec caused is retried once the spec changed (a new generation).
    retry = completed_reason in SPEC_FAILURES and generation != status.observed_generation
    if status.phase in FINISHED_PHASES and same_run and not retry:
        return Finished()
    if (
        status.phase in ACTIVE_PHASES
        and same_run
        and status.start_time is not None
        and status.seed is not None
    ):
        return Resume(seed=int(status.seed or 0), start_time=status.start_time, epoch=status.epoch)
    return NewRun(epoch=status.epoch)
