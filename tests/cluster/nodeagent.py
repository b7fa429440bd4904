"""The node agent: our only stand-in, playing the kubelet for a real control plane.

It registers Ready nodes and runs every Pod the real scheduler binds to them as local processes:
- each Pod gets its own loopback address (127.x.y.z) as podIP; an LD_PRELOAD shim (podnet.c) turns
  binds to 0.0.0.0 / :: into binds to that address, as a pod network namespace would;
- the container's command and args (an image with no command maps to the project's console
  script, by an explicit image table), `$(VAR)` expansion, env from values, Secrets, ConfigMaps and
  field references, envFrom;
- the service-account volume the API server's admission adds (projected token, CA, namespace) is
  filled through the TokenRequest API and bind-mounted at its mountPath in a private mount
  namespace, so a Pod runs with exactly its ServiceAccount's identity and RBAC (in-cluster config);
- readiness, liveness and startup probes (httpGet, tcpSocket); status patched as a kubelet does
  (phase, podIP, hostIP, conditions, containerStatuses with restarts and last state);
- graceful deletion: SIGTERM, the Pod's grace period, SIGKILL, then the final delete;
- a crashed container restarted with back-off and shown as CrashLoopBackOff.

Differences from a kubelet, on purpose: probes run every 0.2 s until the first success (a kubelet
waits a whole period) so tests do not wait for periods;
resources, security contexts and volumes other than the service-account one are not enforced.

Container mode (`--runtime podman`): a container whose image exists in local podman storage runs as
`podman run --rm --network=host` from that image instead of as a process: its entrypoint unless the
spec gives a command, user and group from the security contexts (`--user`), `--read-only` for
readOnlyRootFilesystem, emptyDir volumes as tmpfs, the service-account volume bind-mounted read-only
at its mountPath, the environment computed as above (minus PATH and HOME, which the image sets), and
the same podnet shim bind-mounted into the container and preloaded, so the pod still binds its own
loopback podIP on the shared host network (the image is Debian bookworm, the shim's libc). Graceful
stop is `podman stop -t <grace>`; output goes to the same log files. Images not in podman storage
fall back to the process table.

Run as a process: `python -m cluster.nodeagent --kubeconfig K --workdir W --nodes 3
--image ghcr.io/kar98k/kar98k-loadpod:0.1.0=kar98k-loadpod`. For each running pod it writes
`W/pods/<namespace>/<pod>/<container>.pid` and `.log`, so tests can kill a process as a node
failure would, and read its output.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import itertools
import json
import logging
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kar98k_operator.kube import JSON, Kube, KubeError, NotFound, connection_from_kubeconfig, path

log = logging.getLogger("nodeagent")

HERE = Path(__file__).resolve().parent
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
PROBE_FAST = 0.2
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
SHIM_IN_CONTAINER = "/kar98k-podnet.so"
# podman's default ulimits are refused here: explicit ones, no higher than our own hard limit.
_HARD_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
NOFILE = 65536 if _HARD_NOFILE == resource.RLIM_INFINITY else min(65536, _HARD_NOFILE)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_shim(cache: Path) -> Path:
    """podnet.so, compiled once per source version."""
    source = HERE / "podnet.c"
    digest = f"{abs(hash(source.read_bytes())) & 0xFFFFFFFF:08x}"
    target = cache / f"podnet-{digest}.so"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        subprocess.run(
            ["cc", "-shared", "-fPIC", "-O2", "-o", str(tmp), str(source), "-ldl"], check=True
        )
        tmp.replace(target)
    return target


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known names replaced, `$$` → `$`, unknown left as is."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR.sub(one, text)


class IpPool:
    """Loopback addresses 127.X.Y.2.. with a random X.Y per agent, never reused."""

    def __init__(self) -> None:
        self._base = (random.randint(1, 254), random.randint(0, 200))
        self._counter = itertools.count(0)

    def next(self) -> str:
        n = next(self._counter)
        return f"127.{self._base[0]}.{self._base[1] + n // 250}.{n % 250 + 2}"


class StartError(Exception):
    """A container that cannot start: (reason, message) as a kubelet reports them."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class ContainerRun:
    """One container of a pod: its process, probe results and status."""

    spec: JSON
    state: JSON = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: JSON = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    restarts: int = 0
    proc: asyncio.subprocess.Process | None = None
    container_name: str | None = None  # set while it runs as a podman container

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> JSON:
        return {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restarts,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodRun:
    """Everything the agent does for one Pod, from scheduling to its final delete."""

    def __init__(self, agent: NodeAgent, pod: JSON, ip: str) -> None:
        self.agent = agent
        self.pod = pod
        self.ip = ip
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.dir = agent.workdir / "pods" / self.namespace / self.name
        self.containers = [ContainerRun(c) for c in pod["spec"]["containers"]]
        self.terminating = False
        self.tasks: list[asyncio.Task[None]] = []
        self._status_lock = asyncio.Lock()
        self.phase = "Pending"

    # ------------------------------------------------------------------ status

    async def write_status(self) -> None:
        async with self._status_lock:
            ready = all(c.ready for c in self.containers) and self.phase == "Running"
            conditions = [
                _cond("PodReadyToStartContainers", True),
                _cond("Initialized", True),
                _cond("ContainersReady", ready),
                _cond("Ready", ready),
                _cond("PodScheduled", True),
            ]
            status = {
                "phase": self.phase,
                "hostIP": "127.0.0.1",
                "hostIPs": [{"ip": "127.0.0.1"}],
                "podIP": self.ip,
                "podIPs": [{"ip": self.ip}],
                "startTime": self.pod["metadata"].get("creationTimestamp") or now(),
                "conditions": conditions,
                "containerStatuses": [c.status() for c in self.containers],
                "qosClass": "Burstable",
            }
            with contextlib.suppress(KubeError):
                await self.agent.kube.merge_patch(
                    path("v1", "pods", namespace=self.namespace, name=self.name, sub="status"),
                    {"status": status},
                )

    # ------------------------------------------------------------------ start-up

    async def run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        await self.write_status()
        self.tasks = [asyncio.create_task(self.supervise(c)) for c in self.containers]
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _secret(self, name: str) -> JSON:
        return await self.agent.kube.get(path("v1", "secrets", namespace=self.namespace, name=name))

    async def _configmap(self, name: str) -> JSON:
        return await self.agent.kube.get(
            path("v1", "configmaps", namespace=self.namespace, name=name)
        )

    def _field(self, field_path: str) -> str:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        simple = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
            "status.podIP": self.ip,
            "status.podIPs": self.ip,
        }
        if field_path in simple:
            return str(simple[field_path])
        found = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", field_path)
        if found:
            return str((meta.get(found.group(1)) or {}).get(found.group(2), ""))
        raise StartError("CreateContainerConfigError", f"unsupported fieldPath {field_path}")

    async def _value_from(self, source: JSON) -> str | None:
        optional = False
        try:
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                optional = bool(ref.get("optional"))
                data = (await self._secret(ref["name"])).get("data") or {}
                return base64.b64decode(data[ref["key"]]).decode()
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                optional = bool(ref.get("optional"))
                return str(((await self._configmap(ref["name"])).get("data") or {})[ref["key"]])
            if "fieldRef" in source:
                return self._field(source["fieldRef"]["fieldPath"])
        except (NotFound, KeyError) as exc:
            if optional:
                return None
            message = f"couldn't find key or object: {exc}"
            raise StartError("CreateContainerConfigError", message) from exc
        raise StartError("CreateContainerConfigError", f"unsupported valueFrom {sorted(source)}")

    async def environment(self, container: JSON) -> dict[str, str]:
        """The process environment a kubelet would give this container (not the agent's own)."""
        env: dict[str, str] = {
            "PATH": DEFAULT_PATH,
            "HOSTNAME": self.name,
            "HOME": str(self.dir),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.agent.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.agent.api_port),
        }
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            try:
                if "secretRef" in source:
                    data = (await self._secret(source["secretRef"]["name"])).get("data") or {}
                    env.update({prefix + k: base64.b64decode(v).decode() for k, v in data.items()})
                elif "configMapRef" in source:
                    obj = await self._configmap(source["configMapRef"]["name"])
                    env.update({prefix + k: str(v) for k, v in (obj.get("data") or {}).items()})
            except NotFound as exc:
                ref = source.get("secretRef") or source.get("configMapRef") or {}
                if not ref.get("optional"):
                    raise StartError("CreateContainerConfigError", str(exc)) from exc
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = expand(str(item["value"]), env)
            elif "valueFrom" in item:
                value = await self._value_from(item["valueFrom"])
                if value is not None:
                    env[item["name"]] = value
            else:
                env[item["name"]] = ""
        return env

    def command(self, container: JSON, env: Mapping[str, str]) -> list[str]:
        image = str(container.get("image", ""))
        entry = self.agent.images.get(image)
        if entry is None:
            raise StartError("ErrImagePull", f'Back-off pulling image "{image}"')
        argv = [expand(a, env) for a in container.get("command") or []] or list(entry)
        argv += [expand(a, env) for a in container.get("args") or []]
        return argv

    async def mounts(self, container: JSON) -> list[tuple[Path, str]]:
        """Projected service-account volumes, filled here, as (host dir, mountPath) pairs."""
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        result: list[tuple[Path, str]] = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"], {})
            if "projected" not in volume:
                continue
            target = self.dir / "volumes" / mount["name"]
            target.mkdir(parents=True, exist_ok=True)
            for source in volume["projected"].get("sources") or []:
                await self._project(source, target)
            result.append((target, str(mount["mountPath"])))
        return result

    async def _project(self, source: JSON, target: Path) -> None:
        if "serviceAccountToken" in source:
            sat = source["serviceAccountToken"]
            request: JSON = {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "expirationSeconds": int(sat.get("expirationSeconds", 3607)),
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name,
                                       "uid": self.uid},
                },
            }  # fmt: skip
            if sat.get("audience"):
                request["spec"]["audiences"] = [sat["audience"]]
            account = self.pod["spec"].get("serviceAccountName") or "default"
            answer = await self.agent.kube.create(
                path("v1", "serviceaccounts", namespace=self.namespace, name=account, sub="token"),
                request,
            )
            (target / sat.get("path", "token")).write_text(answer["status"]["token"])
        elif "configMap" in source:
            ref = source["configMap"]
            data = (await self._configmap(ref["name"])).get("data") or {}
            for item in ref.get("items") or [{"key": k, "path": k} for k in data]:
                (target / item["path"]).write_text(str(data.get(item["key"], "")))
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                value = self._field(item.get("fieldRef", {}).get("fieldPath", ""))
                (target / item["path"]).write_text(value)

    # ------------------------------------------------------------------ running

    async def spawn(self, run: ContainerRun) -> asyncio.subprocess.Process:
        container = run.spec
        env = await self.environment(container)
        if await self.agent.image_is_local(str(container.get("image", ""))):
            return await self.spawn_container(run, env)
        argv = self.command(container, env)
        executable = shutil.which(argv[0], path=self.agent.bin_path)
        if executable is None:
            raise StartError("RunContainerError", f'exec: "{argv[0]}": not found')
        argv[0] = executable
        env["LD_PRELOAD"] = str(self.agent.shim)
        env["PODNET_POD_IP"] = self.ip
        mounts = await self.mounts(container)
        if mounts:
            argv = self.agent.in_mount_namespace(mounts, argv)
        base = self.dir / run.name
        # Local files, opened in microseconds: not worth a thread.
        with open(f"{base}.log", "ab") as out:  # noqa: ASYNC230
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=container.get("workingDir") or str(self.dir),
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        Path(f"{base}.pid").write_text(str(proc.pid))  # noqa: ASYNC240
        return proc

    def _security(self, container: JSON, key: str) -> Any:
        """A securityContext field, the container's winning over the pod's."""
        own = container.get("securityContext") or {}
        if key in own:
            return own[key]
        return (self.pod["spec"].get("securityContext") or {}).get(key)

    async def spawn_container(
        self, run: ContainerRun, env: dict[str, str]
    ) -> asyncio.subprocess.Process:
        """`podman run` of the image as the pod spec renders it (see the module doc)."""
        container = run.spec
        name = f"k98-{self.uid[:13]}-{run.name}"[:63]
        await self.agent.podman_quiet("rm", "-f", "-t", "0", name)
        argv = [*PODMAN, "run", "--rm", "--name", name, "--pull=never", "--network=host",
                "--ulimit", f"nofile={NOFILE}:{NOFILE}", "--ulimit", "nproc=4096:4096",
                "--hostname", self.name]  # fmt: skip
        user, group = (
            self._security(container, "runAsUser"),
            self._security(container, "runAsGroup"),
        )
        if user is not None:
            argv += ["--user", f"{user}:{group}" if group is not None else str(user)]
        if self._security(container, "readOnlyRootFilesystem"):
            argv += ["--read-only", "--read-only-tmpfs=false"]
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            if "emptyDir" in volumes.get(mount["name"], {}):
                argv += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777"]
        for host, target in await self.mounts(container):
            argv += ["-v", f"{host}:{target}:ro"]
        argv += ["-v", f"{self.agent.shim}:{SHIM_IN_CONTAINER}:ro"]
        env = {k: v for k, v in env.items() if k not in ("PATH", "HOME")}
        env.update(LD_PRELOAD=SHIM_IN_CONTAINER, PODNET_POD_IP=self.ip)
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        if container.get("workingDir"):
            argv += ["-w", str(container["workingDir"])]
        command = [expand(a, env) for a in container.get("command") or []]
        if command:
            argv += ["--entrypoint", json.dumps(command)]
        argv.append(str(container["image"]))
        argv += [expand(a, env) for a in container.get("args") or []]
        base = self.dir / run.name
        with open(f"{base}.log", "ab") as out:  # noqa: ASYNC230
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
            )
        run.container_name = name
        Path(f"{base}.pid").write_text(str(proc.pid))  # noqa: ASYNC240
        Path(f"{base}.container").write_text(name)  # noqa: ASYNC240
        return proc

    async def kill(self, run: ContainerRun, proc: asyncio.subprocess.Process, sig: int) -> None:
        """A signal to the container (through podman) or to the process group."""
        if run.container_name is not None:
            await self.agent.podman_quiet("kill", "-s", str(int(sig)), run.container_name)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    async def supervise(self, run: ContainerRun) -> None:
        backoff = BACKOFF_START
        while not self.terminating:
            try:
                run.proc = await self.spawn(run)
            except StartError as exc:
                run.state = {"waiting": {"reason": exc.reason, "message": exc.message}}
                await self.write_status()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            started_at = now()
            run.state = {"running": {"startedAt": started_at}}
            run.started = True
            run.ready = "readinessProbe" not in run.spec
            self.phase = "Running"
            await self.write_status()
            probes = asyncio.create_task(self.probe(run, run.proc))
            code = await run.proc.wait()
            run.container_name = None
            probes.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probes
            run.ready = False
            run.started = False
            terminated = {"exitCode": code, "startedAt": started_at, "finishedAt": now(),
                          "reason": "Completed" if code == 0 else "Error"}  # fmt: skip
            if self.terminating:
                run.state = {"terminated": terminated}
                return
            run.last_state = {"terminated": terminated}
            run.restarts += 1
            message = f"back-off {backoff:.0f}s restarting failed container={run.name}"
            run.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            await self.write_status()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def probe(self, run: ContainerRun, proc: asyncio.subprocess.Process) -> None:
        """Readiness and liveness (startup counts as liveness here) until the process ends."""
        readiness = run.spec.get("readinessProbe")
        liveness = run.spec.get("livenessProbe")
        loop = asyncio.get_running_loop()
        started = loop.time()
        next_ready = next_live = started
        live_failures = ready_seen = 0
        while proc.returncode is None:
            now_t = loop.time()
            if readiness and now_t >= next_ready:
                ok = await self.check(readiness, run)
                if ok != run.ready:
                    run.ready = ok
                    await self.write_status()
                ready_seen += ok
                period = readiness.get("periodSeconds", 10) if ready_seen else PROBE_FAST
                next_ready = now_t + period
            if liveness and now_t >= next_live:
                delay = liveness.get("initialDelaySeconds", 0)
                if now_t - started >= delay:
                    live_failures = 0 if await self.check(liveness, run) else live_failures + 1
                    if live_failures >= liveness.get("failureThreshold", 3):
                        log.info("%s/%s %s: liveness failed, restarting",
                                 self.namespace, self.name, run.name)  # fmt: skip
                        await self.kill(run, proc, signal.SIGKILL)
                        return
                next_live = now_t + liveness.get("periodSeconds", 10)
            await asyncio.sleep(PROBE_FAST)

    def _port(self, port: Any, run: ContainerRun) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for item in run.spec.get("ports") or []:
            if item.get("name") == port:
                return int(item["containerPort"])
        return -1

    async def check(self, probe: JSON, run: ContainerRun) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                port = self._port(get.get("port"), run)
                scheme = str(get.get("scheme", "HTTP")).lower()
                url = f"{scheme}://{get.get('host') or self.ip}:{port}{get.get('path', '/')}"
                async with self.agent.http.get(
                    url, timeout=aiohttp.ClientTimeout(total=timeout), ssl=False
                ) as resp:
                    return 200 <= resp.status < 400
            if "tcpSocket" in probe:
                port = self._port(probe["tcpSocket"].get("port"), run)
                _, writer = await asyncio.wait_for(asyncio.open_connection(self.ip, port), timeout)
                writer.close()
                return True
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return True  # exec and grpc probes are not run here: counted as passing

    # ------------------------------------------------------------------ stopping

    async def terminate(self, grace: float) -> None:
        """SIGTERM every container, SIGKILL after `grace`; the processes are gone on return."""
        self.terminating = True
        live = [(c, c.proc) for c in self.containers if c.proc and c.proc.returncode is None]
        procs = [proc for _, proc in live]
        stops = []
        for run, proc in live:
            if run.container_name is not None:  # podman stop: SIGTERM, grace, SIGKILL
                stops.append(
                    self.agent.podman_quiet("stop", "-t", str(int(grace)), run.container_name)
                )
            else:
                await self.kill(run, proc, signal.SIGTERM)
        if procs:
            try:
                # podman stop has the grace itself; the margin covers podman's own start-up.
                limit = grace + 10 if stops else grace
                await asyncio.wait_for(asyncio.gather(*stops, *(p.wait() for p in procs)), limit)
            except TimeoutError:
                for run, proc in live:
                    await self.kill(run, proc, signal.SIGKILL)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.gather(*(p.wait() for p in procs))
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class NodeAgent:
    """See the module docstring."""

    def __init__(
        self,
        kube: Kube,
        *,
        nodes: list[str],
        images: Mapping[str, list[str]],
        workdir: Path,
        api_port: int,
        shim: Path,
        bin_path: str,
        runtime: str = "process",
    ) -> None:
        self.kube = kube
        self.nodes = nodes
        self.images = dict(images)
        self.workdir = workdir
        self.api_port = api_port
        self.shim = shim
        self.bin_path = bin_path
        self.runtime = runtime
        self.ips = IpPool()
        self.runs: dict[str, PodRun] = {}
        self.deleting: set[str] = set()
        self.background: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None
        return self._http

    async def image_is_local(self, image: str) -> bool:
        """In container mode: whether podman's local storage holds `image`."""
        if self.runtime != "podman" or not image:
            return False
        return await self.podman_quiet("image", "exists", image) == 0

    async def podman_quiet(self, *args: str) -> int:
        """A podman command whose output does not matter; its exit code."""
        proc = await asyncio.create_subprocess_exec(
            *PODMAN, *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return await proc.wait()

    def in_mount_namespace(self, mounts: list[tuple[Path, str]], argv: list[str]) -> list[str]:
        """argv run in a private mount namespace with each (dir, mountPath) bind-mounted."""
        script = "".join(
            f'mount --bind "${{{i * 2 + 2}}}" "${{{i * 2 + 1}}}"; ' for i in range(len(mounts))
        )
        shift = len(mounts) * 2
        pairs = [str(x) for host, target in mounts for x in (target, host)]
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            unshare.insert(1, "--map-root-user")
        for _, target in mounts:
            with contextlib.suppress(OSError):
                Path(target).mkdir(parents=True, exist_ok=True)
        return [*unshare, "sh", "-ec", f'{script}shift {shift}; exec "$@"', "sh", *pairs, *argv]

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def register(self, name: str) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.kar98k.dev/agent": "true",
                },
            },
        }
        with contextlib.suppress(KubeError):
            await self.kube.create(path("v1", "nodes"), node)
        # Admission taints a new node not-ready; with no node-lifecycle controller we lift it.
        await self.kube.merge_patch(path("v1", "nodes", name=name), {"spec": {"taints": None}})
        await self.heartbeat(name)

    async def heartbeat(self, name: str) -> None:
        stamp = now()
        conditions = [
            {"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": "",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
            for t, r in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"),
                         ("PIDPressure", "SufficientPID"))
        ] + [{"type": "Ready", "status": "True", "reason": "KubeletReady",
              "message": "kar98k node agent is posting ready status",
              "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]  # fmt: skip
        capacity = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        status = {
            "conditions": conditions,
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.34.0-kar98k-node-agent",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "process://kar98k-node-agent",
                "osImage": "local processes",
                "kernelVersion": os.uname().release,
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        await self.kube.merge_patch(
            path("v1", "nodes", name=name, sub="status"), {"status": status}
        )

    async def run(self) -> None:
        self._http = aiohttp.ClientSession()
        try:
            for name in self.nodes:
                await self.register(name)
            (self.workdir / "agent.ready").write_text("ready\n")
            await self.watch_pods()
        finally:
            await asyncio.gather(
                *(r.terminate(2.0) for r in list(self.runs.values())), return_exceptions=True
            )
            await self._http.close()

    async def watch_pods(self) -> None:
        collection = path("v1", "pods")
        while True:
            try:
                listing = await self.kube.get(collection)
                seen = set()
                for pod in listing.get("items") or []:
                    seen.add(pod["metadata"]["uid"])
                    await self.on_pod("ADDED", pod)
                for uid in set(self.runs) - seen:
                    self.spawn(self.forget(uid))
                rv = listing.get("metadata", {}).get("resourceVersion")
                async for event in self.kube.watch(collection, resource_version=rv):
                    if event.get("type") == "BOOKMARK":
                        continue
                    await self.on_pod(event["type"], event["object"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("pod watch restarts: %s", exc)
                await asyncio.sleep(0.2)

    async def on_pod(self, kind: str, pod: JSON) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName") not in self.nodes:
            return
        uid = meta["uid"]
        if kind == "DELETED":
            self.spawn(self.forget(uid))
            return
        if meta.get("deletionTimestamp"):
            if uid not in self.deleting:
                self.deleting.add(uid)
                grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                self.spawn(self.delete(pod, grace))
            return
        if uid in self.runs:
            self.runs[uid].pod = pod
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        run = PodRun(self, pod, self.ips.next())
        self.runs[uid] = run
        self.spawn(run.run())

    async def forget(self, uid: str) -> None:
        run = self.runs.pop(uid, None)
        if run is not None:
            await run.terminate(0.0)

    async def delete(self, pod: JSON, grace: float) -> None:
        meta = pod["metadata"]
        run = self.runs.pop(meta["uid"], None)
        if run is not None:
            await run.terminate(grace)
        with contextlib.suppress(KubeError):
            await self.kube.request(
                "DELETE",
                path("v1", "pods", namespace=meta["namespace"], name=meta["name"]),
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )
        self.deleting.discard(meta["uid"])


def _cond(ctype: str, ok: bool) -> JSON:
    return {"type": ctype, "status": "True" if ok else "False", "lastTransitionTime": now()}


def parse_images(items: list[str]) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for item in items:
        image, _, command = item.partition("=")
        table[image] = command.split()
    return table


async def main_async(args: argparse.Namespace) -> None:
    kubeconfig = str(args.kubeconfig)
    kube = Kube(lambda: connection_from_kubeconfig(kubeconfig))
    server = connection_from_kubeconfig(kubeconfig).server
    agent = NodeAgent(
        kube,
        nodes=[f"{args.node_prefix}-{i}" for i in range(args.nodes)],
        images=parse_images(args.image),
        workdir=args.workdir,
        api_port=args.pod_api_port or int(server.rsplit(":", 1)[1].rstrip("/")),
        shim=build_shim(args.workdir / "shim"),
        bin_path=args.bin_path,
        runtime=args.runtime,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = asyncio.create_task(agent.run())
    await asyncio.wait([runner, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    await kube.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodeagent", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--node-prefix", default="kar98k-node")
    parser.add_argument("--image", action="append", default=[], help="IMAGE=COMMAND (repeatable)")
    parser.add_argument(
        "--pod-api-port",
        type=int,
        default=0,
        help="port pods reach the API server on (a fault proxy's); default the server's own",
    )
    parser.add_argument(
        "--bin-path",
        default=os.pathsep.join([str(Path(sys.executable).parent), DEFAULT_PATH]),
        help="where commands of mapped images are looked up",
    )
    parser.add_argument(
        "--runtime",
        choices=["process", "podman"],
        default="process",
        help="podman: run containers whose image is in local podman storage as containers",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    args.workdir.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
