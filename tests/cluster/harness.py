"""A whole test cluster: the real control plane, the node agent, kubectl and helm wired to it.

`running_cluster(workdir)` yields a `Cluster`; tests talk to it through its kubeconfig, exactly as
a user would (kubectl, helm, the API). The few things no API offers — killing a pod's process as a
crash would, reading its output, the API server's audit log — go through files the node agent and
the API server write under the work directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kar98k_operator.kube import Kube, connection_from_kubeconfig

from .controlplane import ControlPlane, ControlPlaneError, binaries
from .faultproxy import FaultProxy

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "kar98k"
TESTS = REPO / "tests"
HELM = Path(sys.executable).with_name("helm")


def chart_images() -> dict[str, str]:
    """The images the chart renders by default, mapped to the console script each one runs."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    operator = f"{values['image']['repository']}:{values['image']['tag'] or version}"
    loadpod = (
        values["loadpod"]["image"]
        or f"{values['loadpod']['repository']}:{values['loadpod']['tag'] or version}"
    )
    return {operator: "kar98k-operator", loadpod: "kar98k-loadpod"}


@dataclass
class Cluster:
    plane: ControlPlane
    workdir: Path
    nodes: list[str]
    agent: subprocess.Popen[bytes] | None = None
    proxy: FaultProxy | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    def client(self) -> Kube:
        kubeconfig = str(self.kubeconfig)
        return Kube(lambda: connection_from_kubeconfig(kubeconfig))

    @contextlib.asynccontextmanager
    async def api(self) -> AsyncIterator[Kube]:
        """An admin API client, closed on exit."""
        kube = self.client()
        try:
            yield kube
        finally:
            await kube.close()

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    # ------------------------------------------------------------------ user tools

    def _tool(
        self, argv: list[str], stdin: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """A user tool run against this cluster (KUBECONFIG set); fails with its output."""
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            shown = " ".join([Path(argv[0]).name, *argv[1:]])
            raise AssertionError(f"{shown} failed:\n{done.stderr}{done.stdout}")
        return done

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self._tool([self.plane.tool("kubectl"), *args], stdin, check, timeout)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return self._tool([str(HELM), *args], None, check, timeout)

    def install_chart(
        self,
        release: str = "kar98k",
        namespace: str = "kar98k-system",
        values: dict[str, Any] | None = None,
        *,
        action: str = "install",
    ) -> None:
        """`helm install` of the chart as shipped (its crds/ included), waiting for Ready.

        An upgrade resets to the chart's defaults plus `values`: without `--reset-values`,
        helm keeps the previous release's values whenever none are given."""
        args = [action, release, str(CHART), "-n", namespace, "--wait", "--timeout", "120s"]
        if action == "install":
            args.append("--create-namespace")
        else:
            args.append("--reset-values")
        if values:
            file = self.workdir / f"values-{release}.yaml"
            file.write_text(yaml.safe_dump(values))
            args += ["-f", str(file)]
        self.helm(*args)

    # ------------------------------------------------------------------ what no API offers

    def pod_dir(self, namespace: str, pod: str) -> Path:
        return self.workdir / "agent" / "pods" / namespace / pod

    def pid(self, namespace: str, pod: str, container: str) -> int:
        return int((self.pod_dir(namespace, pod) / f"{container}.pid").read_text())

    def kill(self, namespace: str, pod: str, container: str, sig: int = signal.SIGKILL) -> None:
        """Kill a container's process group, as a crash or the OOM killer would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid(namespace, pod, container), sig)

    def log(self, namespace: str, pod: str, container: str) -> str:
        with contextlib.suppress(OSError):
            return (self.pod_dir(namespace, pod) / f"{container}.log").read_text(errors="replace")
        return ""

    def audit(self, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Audit events (who called what, when) the predicate keeps."""
        events = []
        with contextlib.suppress(OSError), open(self.plane.audit_log) as lines:
            for line in lines:
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if keep(event):
                        events.append(event)
        return events

    def calls_by(self, user: str) -> list[dict[str, Any]]:
        """Every completed API call `user` made (the audit log's ResponseComplete events)."""
        return self.audit(
            lambda e: (
                (e.get("user") or {}).get("username") == user
                and e.get("stage") == "ResponseComplete"
            )
        )

    def forbidden(self, user: str) -> list[str]:
        """The calls of `user` that RBAC refused (403), as 'verb URI'."""
        return sorted(
            {
                f"{e['verb']} {e['requestURI']}"
                for e in self.calls_by(user)
                if (e.get("responseStatus") or {}).get("code") == 403
            }
        )

    def cordon(self, unschedulable: bool) -> None:
        """Every node (un)schedulable: new pods stay Pending while cordoned."""
        patch = json.dumps({"spec": {"unschedulable": unschedulable or None}})
        for node in self.nodes:
            self.kubectl("patch", "node", node, "--type=merge", "-p", patch)

    # ------------------------------------------------------------------ lifecycle

    def start_agent(
        self, images: dict[str, str], timeout: float = 30, runtime: str = "process"
    ) -> None:
        agent_dir = self.workdir / "agent"
        agent_dir.mkdir(parents=True, exist_ok=True)
        ready = agent_dir / "agent.ready"
        ready.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "cluster.nodeagent",
            "--kubeconfig",
            str(self.kubeconfig),
            "--workdir",
            str(agent_dir),
            "--nodes",
            str(len(self.nodes)),
            *(f"--image={image}={command}" for image, command in images.items()),
            f"--runtime={runtime}",
        ]
        if self.proxy is not None:
            argv.append(f"--pod-api-port={self.proxy.port}")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        }
        with open(agent_dir / "agent.log", "ab") as log:
            self.agent = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.agent.poll() is not None or time.monotonic() > deadline:
                tail = (agent_dir / "agent.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"the node agent did not start:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.agent.pid, signal.SIGKILL)
                self.agent.wait(5)
        if self.proxy is not None:
            self.proxy.stop()
        self.plane.stop()


@contextlib.contextmanager
def running_cluster(
    workdir: Path,
    *,
    nodes: int = 3,
    images: dict[str, str] | None = None,
    fault_proxy: bool = False,
    runtime: str = "process",
) -> Iterator[Cluster]:
    """Control plane + node agent with `nodes` Ready nodes; everything stopped on exit.

    With `runtime="podman"`, pods whose image is in local podman storage run as containers.

    With `fault_proxy`, pods reach the API server through a FaultProxy (`cluster.proxy`).
    """
    plane = ControlPlane(workdir=workdir / "plane", bin_dir=binaries())
    cluster = Cluster(
        plane=plane, workdir=workdir, nodes=[f"kar98k-node-{i}" for i in range(nodes)]
    )
    plane.start()
    try:
        if fault_proxy:
            pki = plane.workdir / "pki"
            cluster.proxy = FaultProxy(
                plane.server, pki / "ca.crt", pki / "apiserver.crt", pki / "apiserver.key"
            )
            cluster.proxy.start()
        cluster.start_agent(chart_images() if images is None else images, runtime=runtime)
        yield cluster
    finally:
        cluster.stop()
