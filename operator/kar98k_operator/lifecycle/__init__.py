"""One LoadTest's life as the body of its kopf daemon, one module per phase.

runner       the daemon loop: every step reads spec and status and hands over to a phase
context      what the phases share: live body, status writer, wake-ups, stop requests, events
resume       where a (re)started daemon picks up, decided from spec and status alone
bad_input    specs the model rejects and children the API server refuses
starting     fresh status for a new run, the start barrier, the start-timeout diagnosis
running      the controller core under supervision, and leaving it when the daemon stops
mid_run      spec edits, replica changes and the manual-spike annotation during a run
live_status  the controller's live figures copied into status conditions and metrics
finishing    verdict, final status, load pods scaled to zero
cleanup      spec.cleanup once the TTL after the run has passed
"""

from .context import RunContext
from .runner import LoadTestRunner

__all__ = ["LoadTestRunner", "RunContext"]
