"""The emulated cluster: the API emulator and the kubelet harness in a background thread.

The thread owns its own event loop, so the cluster outlives each test's loop and the tests talk
to it only over HTTP, exactly as they would to a real cluster. The operator is a separate, real
process (`kar98k-operator`) pointed at the cluster with a kubeconfig file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml
from k8s_emulator import Emulator
from k8s_kubelet import Kubelet
from kar98k_operator.kube import JSON, Kube, connection_from_kubeconfig, path

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "loadtests.kar98k.dev.yaml"
OPERATOR_BIN = str(Path(sys.executable).with_name("kar98k-operator"))
RUNNABLE_IMAGE = "kar98k/loadpod:test"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def client_for(kubeconfig: Path) -> Kube:
    """An API client of the cluster a kubeconfig file names (emulated or real)."""
    return Kube(lambda: connection_from_kubeconfig(str(kubeconfig)))


def write_kubeconfig(target: Path, server: str) -> Path:
    target.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulated", "cluster": {"server": server}}],
                "users": [{"name": "tester", "user": {"token": "emulated-cluster-token"}}],
                "contexts": [
                    {
                        "name": "emulated",
                        "context": {
                            "cluster": "emulated",
                            "user": "tester",
                            "namespace": "default",
                        },
                    }
                ],
                "current-context": "emulated",
            }
        )
    )
    return target


class EmulatedCluster:
    """Emulator + kubelet on 127.0.0.1 in a thread; `kubeconfig` points at it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="k8s", daemon=True)
        self._stop = asyncio.Event()
        self.emulator: Emulator | None = None
        self.kubelet: Kubelet | None = None
        self.url = ""
        self.kubeconfig = workdir / "kubeconfig.yaml"
        self._main: concurrent.futures.Future[None] | None = None
        self._ready = threading.Event()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine in the cluster's loop (harness internals only)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        if not self._ready.wait(20):
            raise RuntimeError("the emulated cluster did not start")
        if self._main.done():
            self._main.result()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        emulator = Emulator()
        async with emulator, kmock.Server(emulator, host="127.0.0.1") as server:
            self.emulator = emulator
            self.url = f"http://127.0.0.1:{server.port}"
            write_kubeconfig(self.kubeconfig, self.url)
            kube = client_for(self.kubeconfig)
            logs = self.workdir / "pods"
            logs.mkdir(exist_ok=True)
            self.kubelet = Kubelet(kube, runnable_image=RUNNABLE_IMAGE, log_dir=logs)
            await self.kubelet.start()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.kubelet.stop()
                await kube.close()

    def install_crd(self) -> None:
        """The LoadTest CRD from crds/, as `kubectl apply -f crds/` would create it."""
        crd = yaml.safe_load(CRD_FILE.read_text())
        self._create_all([(path("apiextensions.k8s.io/v1", "customresourcedefinitions"), crd)])

    def create_namespaces(self, *names: str) -> None:
        """Namespaces that exist before the operator starts, as in a real cluster."""
        self._create_all([(path("v1", "namespaces"), {"metadata": {"name": n}}) for n in names])

    def _create_all(self, objects: list[tuple[str, JSON]]) -> None:
        async def create() -> None:
            kube = client_for(self.kubeconfig)
            try:
                for where, body in objects:
                    await kube.create(where, body)
            finally:
                await kube.close()

        self.run(create())

    def stop(self) -> None:
        if self._main is None:
            return
        self.loop.call_soon_threadsafe(self._stop.set)
        with contextlib.suppress(Exception):
            self._main.result(30)
        with contextlib.suppress(Exception):
            self.run(_cancel_everything_else(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


@contextlib.contextmanager
def cluster_with_operator(
    workdir: Path, *operator_args: str, namespaces: tuple[str, ...] = ()
) -> Iterator[tuple[EmulatedCluster, OperatorProcess]]:
    """An emulated cluster with the CRD (and `namespaces`) installed and a `kar98k-operator`
    process serving it (`operator_args` added to its command line); both stopped on exit."""
    cluster = EmulatedCluster(workdir)
    cluster.start()
    try:
        cluster.install_crd()
        cluster.create_namespaces(*namespaces)
        operator = OperatorProcess(
            cluster.kubeconfig, workdir, control_port=free_port(), extra_args=operator_args
        )
        operator.start()
        try:
            yield cluster, operator
        finally:
            operator.stop()
    finally:
        cluster.stop()


async def _cancel_everything_else() -> None:
    """Leave no task behind (kmock keeps a feeder task) before the loop closes."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


class OperatorProcess:
    """`kar98k-operator` as a real process; restartable, killable."""

    def __init__(
        self, kubeconfig: Path, workdir: Path, control_port: int, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.kubeconfig = kubeconfig
        self.extra_args = extra_args
        self.workdir = workdir
        self.control_port = control_port
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"operator-{self.starts}.log"

    def start(self, timeout: float = 30.0) -> None:
        self.starts += 1
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KAR98K_")},
            "KUBECONFIG": str(self.kubeconfig),
            "KAR98K_LOADPOD_IMAGE": RUNNABLE_IMAGE,
            "KAR98K_LOADPOD_PORT": str(self.control_port),
        }
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    OPERATOR_BIN,
                    "--liveness",
                    f"http://127.0.0.1:{self.health_port}/healthz",
                    "--metrics-address",
                    "127.0.0.1",
                    "--metrics-port",
                    str(self.metrics_port),
                    "--verbose",
                    "--log-format",
                    "full",
                    *self.extra_args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited {self.proc.returncode}: {self.tail()}")
            if self.healthy():
                return
            time.sleep(0.1)
        raise RuntimeError(f"operator not healthy within {timeout}s: {self.tail()}")

    def healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode())

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no cleanup, no drain — what a crashed or evicted operator looks like."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
