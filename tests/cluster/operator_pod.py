"""The operator as the chart deploys it: a pod of the test cluster, seen from the outside.

Tests reach it as an SRE would: its pod (found by the chart's labels), its metrics and liveness
ports on the pod's IP, its log (the node agent's capture of the container's output). Killing it is
a SIGKILL of the container's process: the node agent restarts it after a kubelet-like back-off.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from .harness import Cluster

CONTAINER = "operator"


class InClusterOperator:
    def __init__(self, cluster: Cluster, namespace: str, release: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.release = release
        self.metrics_port = 9090
        self.health_port = 8081

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/name=kar98k-operator,app.kubernetes.io/instance={self.release}"

    def pods(self) -> list[dict[str, Any]]:
        out = self.cluster.kubectl(
            "get", "pods", "-n", self.namespace, "-l", self.selector, "-o", "json"
        ).stdout
        return list(json.loads(out)["items"])

    def running_pods(self) -> list[dict[str, Any]]:
        return [
            p
            for p in self.pods()
            if not p["metadata"].get("deletionTimestamp") and (p.get("status") or {}).get("podIP")
        ]

    def pod(self) -> dict[str, Any]:
        pods = self.running_pods()
        if not pods:
            raise AssertionError(f"no running operator pod in {self.namespace}")
        return pods[0]

    def _get(self, pod: dict[str, Any], port: int, url_path: str, timeout: float = 2.0) -> str:
        url = f"http://{pod['status']['podIP']}:{port}{url_path}"
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return str(resp.read().decode())

    def metrics(self) -> str:
        return self._get(self.pod(), self.metrics_port, "/metrics")

    def healthy(self, pod: dict[str, Any] | None = None) -> bool:
        try:
            self._get(pod or self.pod(), self.health_port, "/healthz", timeout=1.0)
        except (OSError, AssertionError):
            return False
        return True

    def wait_healthy(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pod in self.running_pods():
                if self.healthy(pod):
                    return pod
            time.sleep(0.2)
        raise AssertionError(f"the operator was not healthy within {timeout}s:\n{self.tail()}")

    def log_text(self) -> str:
        return "\n".join(
            self.cluster.log(self.namespace, p["metadata"]["name"], CONTAINER) for p in self.pods()
        )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def kill(self, pod: dict[str, Any] | None = None) -> dict[str, Any]:
        """SIGKILL the operator's process (no cleanup, no drain); returns the pod it ran in."""
        target = pod or self.pod()
        self.cluster.kill(self.namespace, target["metadata"]["name"], CONTAINER)
        return target
