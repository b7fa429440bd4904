"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler.

The binaries come from `build-controlplane.sh` (built once from the Go module proxy, cached by
version). Everything listens on 127.0.0.1 with free ports and keeps its state under one work
directory, so several control planes can run side by side and leave nothing behind.

What is set up, and why:
- the API server serves TLS with a CA made here, authenticates a static admin token (group
  system:masters), authorizes with RBAC only (so the operator's grants are really checked) and
  signs service-account tokens with a key made here (TokenRequest, `kubectl create token`); it
  writes an audit log of who called what, so RBAC grants can be compared with the calls made;
- the controller-manager runs the Deployment, ReplicaSet, garbage-collector, namespace and
  service-account controllers (not the cloud, IPAM, volume or node-lifecycle ones: there is no
  cloud, no pod network and no kubelet heartbeat);
- the scheduler runs as it is.
The kubelet is the only stand-in: see nodeagent.py.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-controlplane.sh"
# The oldest controllers we switch off: no cloud, no pod network, no volumes, no kubelet heartbeat.
DISABLED_CONTROLLERS = (
    "cloud-node-lifecycle-controller",
    "node-ipam-controller",
    "node-lifecycle-controller",
    "node-route-controller",
    "service-lb-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-attach-detach-controller",
    "persistentvolume-expander-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "ephemeral-volume-controller",
    "bootstrap-signer-controller",
    "token-cleaner-controller",
)
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    # Who did what, never request or response bodies (Secrets carry tokens).
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


class ControlPlaneError(RuntimeError):
    """A component did not build or start; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def binaries() -> Path:
    """The directory of the control-plane binaries, building them first if needed (~10 min once)."""
    override = os.environ.get("KAR98K_CONTROLPLANE_BIN")
    if override:
        return Path(override)
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise ControlPlaneError(f"building the control plane failed:\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@dataclass
class ControlPlane:
    """See the module docstring. `start()` returns once the API server is ready."""

    workdir: Path
    bin_dir: Path
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    components: list[Component] = field(default_factory=list)
    api_port: int = 0

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    # ------------------------------------------------------------------ set-up

    def _pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="kar98k test control plane")
        serving = ca.issue_cert(
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            not_after=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=7),
        )
        ca.cert_pem.write_to_path(str(pki / "ca.crt"))
        serving.cert_chain_pems[0].write_to_path(str(pki / "apiserver.crt"))
        serving.private_key_pem.write_to_path(str(pki / "apiserver.key"))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (pki / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (pki / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (pki / "tokens.csv").write_text(f'{self.admin_token},admin,admin,"system:masters"\n')

    def write_kubeconfig(self, target: Path, token: str, *, user: str = "admin") -> Path:
        """A kubeconfig for this API server that authenticates with `token`."""
        target.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "kar98k-test",
                            "cluster": {
                                "server": self.server,
                                "certificate-authority": str(self.ca_file),
                            },
                        }
                    ],
                    "users": [{"name": user, "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "kar98k-test",
                            "context": {
                                "cluster": "kar98k-test",
                                "user": user,
                                "namespace": "default",
                            },
                        }
                    ],
                    "current-context": "kar98k-test",
                }
            )
        )
        return target

    def _argv(self) -> dict[str, list[str]]:
        pki = self.workdir / "pki"
        etcd_client, etcd_peer = free_port(), free_port()
        self.api_port = free_port()
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        etcd_url = f"http://127.0.0.1:{etcd_client}"
        return {
            "etcd": [
                self.tool("etcd"),
                "--name=kar98k-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=kar98k-test=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            "kube-apiserver": [
                self.tool("kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                # Required by the API server; nothing routes it (no kube-proxy, no traffic).
                "--service-cluster-ip-range=10.96.0.0/24",
                "--allow-privileged=true",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--v=1",
            ],
            "kube-controller-manager": [
                self.tool("kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--controllers=*," + ",".join(f"-{c}" for c in DISABLED_CONTROLLERS),
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-gc-syncs=20",
                "--v=1",
            ],
            "kube-scheduler": [
                self.tool("kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
        }

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def get(self, url_path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET with the admin token (readiness checks, metrics)."""
        request = urllib.request.Request(
            self.server + url_path, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._ssl()) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def _wait(self, what: str, ready: object, component: Component, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not component.alive():
                raise ControlPlaneError(f"{component.name} exited:\n{component.tail()}")
            with contextlib.suppress(OSError):
                if callable(ready) and ready():
                    return
            time.sleep(0.1)
        raise ControlPlaneError(f"{what} not ready within {timeout}s:\n{component.tail()}")

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pki()
        argv = self._argv()
        self.write_kubeconfig(self.kubeconfig, self.admin_token)
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        self.components = [Component(n, a, logs / f"{n}.log") for n, a in argv.items()]
        etcd, apiserver, *controllers = self.components
        try:
            etcd.start()
            apiserver.start()
            self._wait("kube-apiserver", lambda: self.get("/readyz")[0] == 200, apiserver, timeout)
            for component in controllers:
                component.start()
            # The service-account controller makes `default` in each namespace; pods need it.
            self._wait(
                "service accounts",
                lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
                controllers[0],
                timeout,
            )
        except BaseException:
            self.stop()
            raise

    def healthy(self) -> bool:
        return all(c.alive() for c in self.components)

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()

    def metrics(self) -> str:
        """The API server's own /metrics (apiserver_request_total and friends)."""
        status, body = self.get("/metrics", timeout=10)
        if status != 200:
            raise ControlPlaneError(f"/metrics answered {status}")
        return body.decode()


@contextlib.contextmanager
def running_control_plane(workdir: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(workdir=workdir, bin_dir=binaries())
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
