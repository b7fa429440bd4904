"""Run the docs/operator.md walkthrough against the emulated cluster and print what it shows.

    .venv/bin/python tests/operator/capture_walkthrough.py

Not a test: it regenerates the example output in docs/operator.md from a real run (real operator
process, real load pods, real target server; only the API server is emulated). `kubectl get`
tables are rendered from the CRD's printer columns over the real objects.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from k8s_cluster import (
    CRD_FILE,
    EmulatedCluster,
    OperatorProcess,
    client_for,
    cluster_with_operator,
)
from kar98k.demo import DemoHttpServer
from kar98k_operator.kube import path
from lt_helpers import events_of, lt_path, patch_lt, status_of, wait_status

NS = "shop"


def columns() -> list[dict[str, Any]]:
    doc = yaml.safe_load(CRD_FILE.read_text())
    cols: list[dict[str, Any]] = doc["spec"]["versions"][0]["additionalPrinterColumns"]
    return cols


def dig(obj: dict[str, Any], json_path: str) -> Any:
    cur: Any = obj
    for part in json_path.lstrip(".").split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def kubectl_get(items: list[dict[str, Any]]) -> str:
    cols = columns()
    rows = [["NAME", *[c["name"].upper() for c in cols]]]
    for obj in items:
        row = [obj["metadata"]["name"]]
        for col in cols:
            value = dig(obj, col["jsonPath"])
            if col["type"] == "date":
                created = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                value = f"{int((datetime.now(UTC) - created).total_seconds())}s"
            row.append("" if value is None else str(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def show(title: str, text: str) -> None:
    print(f"\n===== {title}\n{text.rstrip()}")


async def walkthrough(cluster: EmulatedCluster, operator: OperatorProcess) -> None:
    api = client_for(cluster.kubeconfig)
    await api.create(path("v1", "namespaces"), {"metadata": {"name": NS}})
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
        show("manifest", yaml.safe_dump(manifest, sort_keys=False))
        await api.create(lt_path(NS), manifest)
        await wait_status(
            api, NS, "checkout-smoke", lambda s: s.get("phase") == "Running", within=30, what="run"
        )
        await asyncio.sleep(5)
        obj = await api.get(lt_path(NS, "checkout-smoke"))
        show("kubectl get lt -n shop (running)", kubectl_get([obj]))
        annotation = {"metadata": {"annotations": {"kar98k.dev/spike": "factor=2,duration=4s"}}}
        await patch_lt(api, NS, "checkout-smoke", annotation)
        await wait_status(
            api,
            NS,
            "checkout-smoke",
            lambda s: bool(s.get("spikeActive")),
            within=10,
            what="spike",
        )
        obj = await api.get(lt_path(NS, "checkout-smoke"))
        show("kubectl get lt -n shop (during the manual spike)", kubectl_get([obj]))
        show("status.spike", yaml.safe_dump({"spike": obj["status"]["spike"]}, sort_keys=False))
        show("operator /metrics (excerpt)", "\n".join(
            line for line in operator.metrics().splitlines()
            if line.startswith("kar98k_") and "checkout-smoke" in line
        ))  # fmt: skip
        final = await wait_status(
            api,
            NS,
            "checkout-smoke",
            lambda s: s.get("phase") in ("Succeeded", "Failed"),
            within=40,
            what="the verdict",
        )
        obj = await api.get(lt_path(NS, "checkout-smoke"))
        show("kubectl get lt -n shop (finished)", kubectl_get([obj]))
        show("kubectl get lt checkout-smoke -n shop -o yaml (status)", yaml.safe_dump(
            {"status": final}, sort_keys=False, width=100))  # fmt: skip
        events = await events_of(api, NS, "checkout-smoke")
        lines = [f"{'TYPE':<8} {'REASON':<16} MESSAGE"]
        lines += [f"{e['type']:<8} {e['reason']:<16} {e['message']}" for e in events]
        show("kubectl events --for loadtest/checkout-smoke -n shop", "\n".join(lines))
        deploys = await api.list(
            path("apps/v1", "deployments", namespace=NS), label_selector="kar98k.dev/loadtest"
        )
        show("deployment replicas after the run", "\n".join(
            f"{d['metadata']['name']}: replicas={d['spec']['replicas']}" for d in deploys["items"]
        ))  # fmt: skip

        bad = {
            **manifest,
            "metadata": {"name": "too-tight", "namespace": NS},
            "spec": {**manifest["spec"], "pattern": {"baseTPS": 500, "maxTPS": 100}},
        }
        await api.create(lt_path(NS), bad)
        status = await wait_status(
            api, NS, "too-tight", lambda s: s.get("phase") == "Failed", within=10, what="Failed"
        )
        show("invalid spec: status.conditions", yaml.safe_dump(
            {"conditions": status["conditions"]}, sort_keys=False, width=100))  # fmt: skip
        paused = {**manifest, "metadata": {"name": "paused-soak", "namespace": NS}}
        paused["spec"] = {**manifest["spec"], "paused": True}
        del paused["spec"]["duration"]
        await api.create(lt_path(NS, None), paused)
        await wait_status(
            api, NS, "paused-soak", lambda s: s.get("phase") == "Paused", within=30, what="Paused"
        )
        objs = await api.list(lt_path(NS))
        show("kubectl get lt -n shop", kubectl_get(objs["items"]))
        status = await status_of(api, NS, "paused-soak")
        show("paused: status.message", status["message"])
        await api.delete(lt_path(NS, "paused-soak"))
        await api.delete(lt_path(NS, "too-tight"))
    await api.close()


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        cluster_with_operator(Path(tmp)) as (cluster, operator),
    ):
        t0 = time.monotonic()
        asyncio.run(walkthrough(cluster, operator))
    print(f"\n(walkthrough took {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
