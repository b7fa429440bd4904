"""Kubernetes Events on a LoadTest: start, spikes, pod loss, threshold breach, pause, finish.

The controller core reports ControllerEvents; this module names them the Kubernetes way
(CamelCase reason, Normal or Warning) and posts them through kopf's event queue, which batches
and retries. Posting never raises into the run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kar98k.controller import ControllerEvent

log = logging.getLogger(__name__)

# controller event kind -> (event type, reason)
_KINDS: dict[str, tuple[str, str]] = {
    "started": ("Normal", "Started"),
    "spike-begin": ("Normal", "SpikeBegin"),
    "spike-end": ("Normal", "SpikeEnd"),
    "pod-lost": ("Warning", "PodLost"),
    "pod-joined": ("Normal", "PodJoined"),
    "threshold-breach": ("Warning", "ThresholdBreach"),
    "paused": ("Normal", "Paused"),
    "resumed": ("Normal", "Resumed"),
    "finished": ("Normal", "Finished"),
    "search-step": ("Normal", "SearchStep"),
    "search-result": ("Normal", "SearchResult"),
    "safety-tripped": ("Warning", "SafetyTripped"),
    "safety-closed": ("Normal", "SafetyResumed"),
}

MAX_MESSAGE = 1000


def reference(body: Mapping[str, Any]) -> dict[str, Any]:
    """The least of a body kopf needs to build an involvedObject."""
    meta = body.get("metadata", {})
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
    }


def post(body: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
    """One event on the LoadTest; kopf.event ignores the posting level, unlike kopf.info."""
    try:
        kopf.event(
            kopf.Body(cast(kopf.RawBody, reference(body))),
            type="Warning" if warning else "Normal",
            reason=reason,
            message=message[:MAX_MESSAGE],
        )
    except Exception:  # no event must ever break a run
        log.exception("could not queue event %s", reason)


def from_controller(body: Mapping[str, Any], event: ControllerEvent) -> None:
    kind, reason = _KINDS.get(event.kind, ("Normal", event.kind.title().replace("-", "")))
    post(body, reason, event.message, warning=kind == "Warning")
