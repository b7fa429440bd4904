"""Run the docs/operator.md walkthrough on the real test control plane and print what it shows.

    PYTHONPATH=tests .venv/bin/python tests/operator/capture_walkthrough.py

Not a test: it regenerates the example output in docs/operator.md from a real run — kube-apiserver,
controller-manager and scheduler as built by tests/cluster, the chart installed with helm, the
operator and the load pods run by the node agent, a real target server — through real `kubectl`.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.harness import Cluster, running_cluster
from kar98k.demo import DemoHttpServer

NS = "shop"


def show(title: str, text: str) -> None:
    print(f"\n===== {title}\n{text.rstrip()}", flush=True)


def run(cluster: Cluster, *args: str, stdin: str | None = None, check: bool = True) -> str:
    done = cluster.kubectl(*args, stdin=stdin, check=check)
    return (done.stdout + done.stderr).rstrip()


async def kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    out = await asyncio.to_thread(run, cluster, *args, stdin=stdin, check=False)
    # Loopback ports of this run say nothing to a reader.
    out = re.sub(r"127\.0\.0\.1:\d+", "checkout.shop.svc:8080", out)
    show(f"$ kubectl {' '.join(args)}", out)
    return out


async def wait_phase(cluster: Cluster, name: str, *phases: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        phase = await asyncio.to_thread(
            run, cluster, "get", "lt", name, "-n", NS, "-o", "jsonpath={.status.phase}"
        )
        if phase in phases:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{name} never reached {phases}")


async def walkthrough(cluster: Cluster) -> None:
    await asyncio.to_thread(run, cluster, "create", "namespace", NS)
    async with DemoHttpServer("127.0.0.1") as server:
        manifest = {
            "apiVersion": "kar98k.dev/v1alpha1",
            "kind": "LoadTest",
            "metadata": {"name": "checkout-smoke", "namespace": NS},
            "spec": {
                "duration": "20s",
                "targets": [{"name": "checkout", "url": f"{server.url}/fast"}],
                "pattern": {
                    "baseTPS": 80,
                    "rampUp": "4s",
                    "noise": {"enabled": True, "amplitude": 0.1},
                    "spikes": {"rampUp": "1s", "rampDown": "2s"},
                },
                "loadPods": {"replicas": 2},
                "thresholds": {"latency": {"p99": "250ms"}, "errorRate": 0.01},
                "cleanup": {"onSuccess": "none"},
            },
        }
        text = yaml.safe_dump(manifest, sort_keys=False)
        await kubectl(cluster, "apply", "-f", "-", stdin=text)
        await wait_phase(cluster, "checkout-smoke", "Running")
        await asyncio.sleep(5)
        await kubectl(cluster, "get", "lt", "-n", NS)
        await kubectl(cluster, "get", "pods", "-n", NS, "-o", "wide")
        await kubectl(
            cluster,
            "annotate",
            "lt",
            "checkout-smoke",
            "-n",
            NS,
            "kar98k.dev/spike=factor=2,duration=4s",
        )
        await asyncio.sleep(2)
        await kubectl(cluster, "get", "lt", "-n", NS)
        await wait_phase(cluster, "checkout-smoke", "Succeeded", "Failed")
        await kubectl(cluster, "get", "lt", "-n", NS)
        await kubectl(cluster, "describe", "lt", "checkout-smoke", "-n", NS)
        await kubectl(cluster, "events", "--for", "loadtest/checkout-smoke", "-n", NS)
        await kubectl(cluster, "get", "deploy", "-n", NS)

        bad = yaml.safe_load(text)
        bad["metadata"]["name"] = "too-tight"
        bad["spec"]["pattern"] = {"baseTPS": 500, "maxTPS": 100}
        await kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(bad))
        zone = yaml.safe_load(text)
        zone["metadata"]["name"] = "martian"
        zone["spec"]["pattern"]["timeZone"] = "Mars/Olympus"
        await kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump(zone))
        await wait_phase(cluster, "martian", "Failed")
        await kubectl(
            cluster,
            "get",
            "lt",
            "martian",
            "-n",
            NS,
            "-o",
            "jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}"
            "{'\\n'}{end}",
        )
        await kubectl(cluster, "explain", "loadtest.spec.pattern.spikes")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_cluster(Path(tmp), nodes=3) as cluster:
        t0 = time.monotonic()
        cluster.install_chart()
        show("$ helm install kar98k helm/kar98k -n kar98k-system --create-namespace", "(ok)")
        asyncio.run(walkthrough(cluster))
    print(f"\n(walkthrough took {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
