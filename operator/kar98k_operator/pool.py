"""The controller's PodSource in a cluster: this LoadTest's load pods that are Ready with a podIP.

A list-then-watch loop (server-side label selector) keeps an in-memory copy of the pods, so
`endpoints()` — asked every 100 ms tick — costs a dict walk, never an API call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from kar98k.controller.pods import PodEndpoint

from . import names
from .kube import JSON, Kube, KubeError, path

log = logging.getLogger(__name__)

RELIST_BACKOFF = 1.0


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Ready condition True, a podIP, and not on its way out."""
    meta = pod.get("metadata", {})
    status = pod.get("status", {})
    if meta.get("deletionTimestamp") or not status.get("podIP"):
        return False
    if status.get("phase") not in (None, "Running"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def control_port(pod: Mapping[str, Any], default: int) -> int:
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == names.CONTROL_PORT_NAME and port.get("containerPort"):
                return int(port["containerPort"])
    return default


def why_not_ready(pod: Mapping[str, Any]) -> str:
    """A short reason a pod is not ready: Pending, image pull, crash loop, unschedulable..."""
    meta = pod.get("metadata", {})
    status = pod.get("status", {})
    if meta.get("deletionTimestamp"):
        return "Terminating"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state:
            waiting = state["waiting"] or {}
            reason = waiting.get("reason") or "Waiting"
            message = waiting.get("message")
            return f"{reason} ({message})" if message else str(reason)
        if "terminated" in state:
            term = state["terminated"] or {}
            return f"Terminated ({term.get('reason') or 'exit ' + str(term.get('exitCode'))})"
        if cs.get("restartCount"):
            return f"restarted {cs['restartCount']} times, not ready"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            reason = cond.get("reason") or "Unschedulable"
            message = cond.get("message")
            return f"{reason} ({message})" if message else str(reason)
    phase = status.get("phase") or "Pending"
    if phase == "Running" and not status.get("podIP"):
        return "Running without a podIP"
    if phase == "Running":
        return "Running, readiness probe failing"
    return str(phase)


class PodPool:
    """Implements kar98k.controller.pods.PodSource for one LoadTest."""

    def __init__(self, kube: Kube, *, namespace: str, loadtest: str, default_port: int) -> None:
        self._kube = kube
        self._collection = path("v1", "pods", namespace=namespace)
        self._selector = names.selector(names.pod_labels(loadtest))
        self._default_port = default_port
        self._pods: dict[str, JSON] = {}
        self._token = ""
        self.changed = asyncio.Event()
        self.synced = asyncio.Event()

    def set_token(self, token: str) -> None:
        self._token = token

    def endpoints(self) -> list[PodEndpoint]:
        out = []
        for name, pod in sorted(self._pods.items()):
            if is_ready(pod):
                ip = pod["status"]["podIP"]
                host = f"[{ip}]" if ":" in ip else ip
                port = control_port(pod, self._default_port)
                out.append(PodEndpoint(name, f"http://{host}:{port}", self._token))
        return out

    def ready_count(self) -> int:
        return sum(1 for pod in self._pods.values() if is_ready(pod))

    def unready(self) -> list[tuple[str, str]]:
        """(pod name, why) for every known pod that is not ready."""
        return [(n, why_not_ready(p)) for n, p in sorted(self._pods.items()) if not is_ready(p)]

    def total(self) -> int:
        return len(self._pods)

    def _apply(self, event_type: str, pod: JSON) -> None:
        name = pod.get("metadata", {}).get("name")
        if not name:
            return
        if event_type == "DELETED":
            self._pods.pop(name, None)
        else:
            self._pods[name] = pod
        self.changed.set()

    async def _relist(self) -> str | None:
        listing = await self._kube.list(self._collection, label_selector=self._selector)
        self._pods = {
            p["metadata"]["name"]: p for p in listing.get("items") or [] if p.get("metadata")
        }
        self.changed.set()
        self.synced.set()
        rv = listing.get("metadata", {}).get("resourceVersion")
        return str(rv) if rv else None

    async def run(self) -> None:
        """List, then watch from that point; relist after every error or stream end. Forever."""
        while True:
            try:
                rv = await self._relist()
                async for event in self._kube.watch(
                    self._collection, label_selector=self._selector, resource_version=rv
                ):
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self._apply(event["type"], event.get("object") or {})
            except asyncio.CancelledError:
                raise
            except (KubeError, OSError, TimeoutError, ValueError) as exc:
                log.debug("pod watch for %s ended: %s; relisting", self._selector, exc)
                await asyncio.sleep(RELIST_BACKOFF)
            except Exception:
                log.exception("pod watch for %s failed; relisting", self._selector)
                await asyncio.sleep(RELIST_BACKOFF)
