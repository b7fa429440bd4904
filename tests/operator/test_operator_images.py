"""The chart's own images, built here with podman, run end to end on the real control plane.

`make images` builds ghcr.io/kar98k/kar98k-operator and ghcr.io/kar98k/kar98k-loadpod at the
chart's appVersion (on a base made with debootstrap when no registry answers). A cluster of this
test's own runs the node agent in container mode with an empty process table, so every pod —
the chart's operator and the load pods — can only run as a podman container from those images,
as the chart and the operator render them (non-root, read-only root filesystem). A LoadTest
against a server on 127.0.0.1 reaches Running at the asked rate and finishes Succeeded.

If podman cannot build or run containers here, the test fails saying so: it does not skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cluster.harness import REPO, Cluster, chart_images, running_cluster
from cluster.nodeagent import NOFILE
from cluster.operator_pod import InClusterOperator
from conftest import Target
from kar98k_operator.kube import Kube, path
from lt_helpers import apply, children, manifest, running_with, wait_phase, wait_status

pytestmark = pytest.mark.slow

PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
BUILD_TIMEOUT = 1500  # a cold build: debootstrap (~1-2 min) and two pip installs
NAMESPACE = "kar98k-system"
RATE = 60.0


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """`make images` (cached: seconds when nothing changed); the chart's references, built."""
    if shutil.which("make") is None:
        pytest.fail("`make` is needed to build the images")
    done = _run(["make", "images"], BUILD_TIMEOUT)
    if done.returncode != 0:
        pytest.fail(
            "`make images` failed: podman cannot build the chart's images here "
            f"(see docs/install.md, 'Images'):\n{(done.stderr + done.stdout)[-4000:]}"
        )
    refs = chart_images()
    for ref in refs:
        if _run([*PODMAN, "image", "exists", ref], 60).returncode != 0:
            pytest.fail(f"`make images` passed but podman storage has no {ref}")
    probe = _run(
        [*PODMAN, "run", "--rm", "--network=host", "--read-only", "--user", "65532:65532",
         "--ulimit", f"nofile={NOFILE}:{NOFILE}", "--ulimit", "nproc=4096:4096",
         "--entrypoint", '["python3", "-c", "import kar98k_loadpod; print(\\"ok\\")"]',
         list(refs)[1]],
        120,
    )  # fmt: skip
    if probe.returncode != 0 or "ok" not in probe.stdout:
        pytest.fail(f"podman cannot run a container from the load-pod image:\n{probe.stderr}")
    return refs


def inspect(cluster: Cluster, namespace: str, pod: str) -> dict[str, Any]:
    """`podman inspect` of the one container the node agent runs for this pod."""
    (marker,) = list(cluster.pod_dir(namespace, pod).glob("*.container"))
    done = _run([*PODMAN, "inspect", marker.read_text()], 60)
    assert done.returncode == 0, f"{pod} does not run as a container: {done.stderr}"
    return dict(json.loads(done.stdout)[0])


def assert_hardened(info: dict[str, Any], image: str) -> None:
    assert info["ImageName"] == image, info["ImageName"]
    assert info["Config"]["User"] == "65532:65532", info["Config"]["User"]
    assert info["HostConfig"]["ReadonlyRootfs"] is True


async def test_chart_images_run_a_loadtest_end_to_end(
    tmp_path: Path, target: Target, images: dict[str, str]
) -> None:
    operator_image, loadpod_image = list(images)
    # No process table: a pod whose image podman does not hold cannot start at all.
    with running_cluster(tmp_path, nodes=2, images={}, runtime="podman") as local:
        started = time.monotonic()
        local.install_chart("kar98k", NAMESPACE)  # the chart as shipped: its default images
        operator = InClusterOperator(local, NAMESPACE, "kar98k")
        operator.wait_healthy(timeout=120)
        operator_ready = time.monotonic() - started
        assert_hardened(
            inspect(local, NAMESPACE, operator.pod()["metadata"]["name"]), operator_image
        )

        async with local.api() as api:
            await run_loadtest(api, local, target, loadpod_image, operator_ready)


async def run_loadtest(
    api: Kube, local: Cluster, target: Target, loadpod_image: str, operator_ready: float
) -> None:
    ns = "images"
    await api.create(path("v1", "namespaces"), {"metadata": {"name": ns}})
    body = manifest(
        "boxed",
        target.url,
        pattern={"baseTPS": RATE},
        duration="20s",
        loadPods={"replicas": 2, "startTimeout": "90s"},
        thresholds={"errorRate": 0.5},
    )
    created = time.monotonic()
    await apply(api, ns, body)
    await wait_status(api, ns, "boxed", running_with(2), within=120, what="Running with 2 pods")
    pods_ready = time.monotonic() - created

    rate = await target.rate(5.0)
    assert RATE * 0.75 <= rate <= RATE * 1.25, f"the target saw {rate:.1f} req/s, not ~{RATE:g}"
    pods = (await children(api, ns, "boxed"))["pods"]
    assert len(pods) == 2
    for pod in pods:
        assert_hardened(inspect(local, ns, pod["metadata"]["name"]), loadpod_image)

    final = await wait_phase(api, ns, "boxed", "Succeeded", "Failed", within=60)
    assert final["phase"] == "Succeeded", final
    print(
        f"\ncontainer mode: operator Ready {operator_ready:.1f} s after helm install; "
        f"LoadTest Running (2 load pods Ready) {pods_ready:.1f} s after create; {rate:.1f} req/s"
    )
