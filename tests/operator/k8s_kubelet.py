"""A kubelet (and Deployment controller) for the emulated API: load pods as real processes.

Watches load-pod Deployments; keeps `spec.replicas` Pod objects per Deployment; gives each Pod a
loopback podIP and starts a real `kar98k-loadpod` bound to it, with the port of the container
port `control` and the token from the Secret the Deployment's env references; marks the Pod Ready
once `/readyz` answers. Deleted Pods (or scaled-down Deployments) get their process stopped.
Images other than the runnable one behave like an image that cannot be pulled.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import os
import random
import secrets
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from kar98k_operator import names
from kar98k_operator.kube import JSON, Kube, KubeError, path

log = logging.getLogger("k8s-kubelet")

LOADPOD_BIN = str(Path(sys.executable).with_name("kar98k-loadpod"))
READY_TIMEOUT = 20.0


def now() -> str:
    import datetime  # noqa: PLC0415

    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodProcess:
    name: str
    namespace: str
    ip: str
    port: int
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    restarts: int = 0
    env: dict[str, str] = field(default_factory=dict)


class IpPool:
    """Loopback addresses 127.X.Y.2.. with a random X.Y per harness, never reused."""

    def __init__(self) -> None:
        self._base = (random.randint(1, 254), random.randint(0, 200))
        self._counter = itertools.count(0)

    def next(self) -> str:
        n = next(self._counter)
        return f"127.{self._base[0]}.{self._base[1] + n // 250}.{n % 250 + 2}"


class Kubelet:
    """See module docstring. Runs in the emulator's event loop; talks to it over HTTP."""

    def __init__(self, kube: Kube, *, runnable_image: str, log_dir: Path) -> None:
        self.kube = kube
        self.runnable_image = runnable_image
        self.log_dir = log_dir
        self.ips = IpPool()
        self.processes: dict[tuple[str, str], PodProcess] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._selector = f"{names.LABEL_NAME}={names.LOADPOD_APP}"
        self._held: set[str] = set()
        self._parked: dict[str, list[JSON]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def hold(self, namespace: str) -> None:
        """New pods in `namespace` stay Pending (Unschedulable) until released (thread-safe)."""
        self._held.add(namespace)

    def release(self, namespace: str) -> None:
        """Schedule the pods held back in `namespace` (thread-safe)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._release, namespace)

    def _release(self, namespace: str) -> None:
        self._held.discard(namespace)
        for pod in self._parked.pop(namespace, []):
            self._spawn(self._run_pod(pod))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._watch_loop("apps/v1", "deployments", self._on_deployment)),
            asyncio.create_task(self._watch_loop("v1", "pods", self._on_pod)),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(self._kill(p) for p in list(self.processes.values())))

    # ------------------------------------------------------------------ watching

    async def _watch_loop(self, api_version: str, plural: str, handler: Any) -> None:
        collection = path(api_version, plural)
        while True:
            try:
                listing = await self.kube.list(collection, label_selector=self._selector)
                for item in listing.get("items", []):
                    await handler("ADDED", item)
                rv = listing.get("metadata", {}).get("resourceVersion")
                async for event in self.kube.watch(
                    collection, label_selector=self._selector, resource_version=rv
                ):
                    await handler(event["type"], event["object"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("kubelet watch %s restarts: %s", plural, exc)
                await asyncio.sleep(0.2)

    async def _on_deployment(self, kind: str, deploy: JSON) -> None:
        meta = deploy["metadata"]
        key = (meta["namespace"], meta["name"])
        self._spawn(self._reconcile(key, None if kind == "DELETED" else deploy))

    async def _on_pod(self, kind: str, pod: JSON) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            proc = self.processes.pop(key, None)
            if proc is not None:
                self._spawn(self._kill(proc))
            if kind == "DELETED":
                owner = _owner_name(pod, "Deployment")
                if owner:
                    self._spawn(self._reconcile((meta["namespace"], owner), "refetch"))

    # ------------------------------------------------------------------ deployment controller

    async def _reconcile(self, key: tuple[str, str], deploy: JSON | str | None) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            ns, name = key
            if deploy == "refetch" or deploy is not None:
                deploy = await self.kube.get_or_none(
                    path("apps/v1", "deployments", namespace=ns, name=name)
                )
            if not isinstance(deploy, dict):
                return  # deleted: the emulator's garbage collector removes its pods
            uid = deploy["metadata"]["uid"]
            listing = await self.kube.list(path("v1", "pods", namespace=ns))
            mine = [
                p
                for p in listing.get("items", [])
                if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
                and not p["metadata"].get("deletionTimestamp")
            ]
            want = int(deploy.get("spec", {}).get("replicas", 1))
            for _ in range(want - len(mine)):
                pod = await self._create_pod(deploy)
                mine.append(pod)
            if len(mine) > want:
                mine.sort(key=lambda p: p["metadata"]["creationTimestamp"])
                for pod in mine[want:]:
                    with contextlib.suppress(KubeError):
                        await self.kube.delete(
                            path("v1", "pods", namespace=ns, name=pod["metadata"]["name"])
                        )
                mine = mine[:want]
            await self._deployment_status(deploy, len(mine))

    async def _deployment_status(self, deploy: JSON, replicas: int) -> None:
        meta = deploy["metadata"]
        with contextlib.suppress(KubeError):
            await self.kube.merge_patch(
                path(
                    "apps/v1",
                    "deployments",
                    namespace=meta["namespace"],
                    name=meta["name"],
                    sub="status",
                ),
                {"status": {"replicas": replicas, "observedGeneration": meta.get("generation")}},
            )

    async def _create_pod(self, deploy: JSON) -> JSON:
        meta = deploy["metadata"]
        template = deploy["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{secrets.token_hex(4)}-{secrets.token_hex(2)[:3]}",
                "namespace": meta["namespace"],
                "labels": dict(template["metadata"].get("labels", {})),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**template["spec"], "nodeName": "emulated-node"},
        }
        created = await self.kube.create(path("v1", "pods", namespace=meta["namespace"]), pod)
        self._spawn(self._run_pod(created))
        return created

    # ------------------------------------------------------------------ pods

    async def _set_status(self, pod: JSON, status: JSON) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(KubeError):
            await self.kube.merge_patch(
                path("v1", "pods", namespace=meta["namespace"], name=meta["name"], sub="status"),
                {"status": status},
            )

    async def _run_pod(self, pod: JSON) -> None:
        meta = pod["metadata"]
        container = pod["spec"]["containers"][0]
        key = (meta["namespace"], meta["name"])
        if meta["namespace"] in self._held:
            self._parked.setdefault(meta["namespace"], []).append(pod)
            await self._set_status(
                pod,
                {
                    "phase": "Pending",
                    "conditions": [
                        {
                            **_cond("PodScheduled", False),
                            "reason": "Unschedulable",
                            "message": "0/1 nodes are available: held by the test harness",
                        }
                    ],
                },
            )
            return
        if container.get("image") != self.runnable_image:
            message = f'Back-off pulling image "{container.get("image")}"'
            await self._set_status(pod, _waiting(container["name"], "ImagePullBackOff", message))
            return
        port = next(
            p["containerPort"]
            for p in container.get("ports", [])
            if p.get("name") == names.CONTROL_PORT_NAME
        )
        proc = PodProcess(meta["name"], meta["namespace"], self.ips.next(), int(port))
        try:
            proc.env = await self._env(pod, container)
        except (KubeError, KeyError) as exc:
            reason = "CreateContainerConfigError"
            await self._set_status(pod, _waiting(container["name"], reason, str(exc)))
            return
        self.processes[key] = proc
        proc.task = asyncio.create_task(self._supervise(pod, proc))

    async def _env(self, pod: JSON, container: JSON) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAR98K_")}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            source = item.get("valueFrom", {})
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = await self.kube.get(
                    path("v1", "secrets", namespace=pod["metadata"]["namespace"], name=ref["name"])
                )
                env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
            elif "fieldRef" in source:
                field_path = source["fieldRef"]["fieldPath"]
                if field_path == "metadata.name":
                    env[item["name"]] = pod["metadata"]["name"]
                elif field_path == "metadata.namespace":
                    env[item["name"]] = pod["metadata"]["namespace"]
        return env

    async def _supervise(self, pod: JSON, proc: PodProcess) -> None:
        """Start the process; Ready once /readyz answers; restart it (CrashLoop) if it dies."""
        cname = pod["spec"]["containers"][0]["name"]
        creating = _scheduled("Pending", cname, {"waiting": {"reason": "ContainerCreating"}})
        await self._set_status(
            pod,
            {**creating, "podIP": proc.ip, "podIPs": [{"ip": proc.ip}], "hostIP": "127.0.0.1"},
        )
        while not proc.stopping:
            logfile = _open_log(self.log_dir / f"{proc.namespace}.{proc.name}.log")
            try:
                proc.proc = await asyncio.create_subprocess_exec(
                    LOADPOD_BIN,
                    "--listen",
                    f"{proc.ip}:{proc.port}",
                    "--name",
                    proc.name,
                    env=proc.env,
                    stdout=logfile,
                    stderr=logfile,
                    start_new_session=True,
                )
            finally:
                logfile.close()
            ready = await self._wait_ready(proc)
            if ready and not proc.stopping:
                running = {"running": {"startedAt": now()}}
                await self._set_status(
                    pod, _scheduled("Running", cname, running, ready=True, restarts=proc.restarts)
                )
            code = await proc.proc.wait()
            if proc.stopping:
                return
            proc.restarts += 1
            crashed = {"waiting": {"reason": "CrashLoopBackOff", "message": f"exit {code}"}}
            await self._set_status(
                pod, _scheduled("Running", cname, crashed, restarts=proc.restarts)
            )
            await asyncio.sleep(min(5.0, 0.5 * proc.restarts))

    async def _wait_ready(self, proc: PodProcess) -> bool:
        url = f"http://{proc.ip}:{proc.port}/readyz"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline and not proc.stopping:
                if proc.proc is not None and proc.proc.returncode is not None:
                    return False
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        if resp.status == 200:
                            return True
                await asyncio.sleep(0.05)
        return False

    async def _kill(self, proc: PodProcess) -> None:
        """SIGTERM (the load pod drains), SIGKILL after a grace period."""
        proc.stopping = True
        child = proc.proc
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.wait(), 12.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
        if proc.task is not None and proc.task is not asyncio.current_task():
            proc.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await proc.task

    def pod_address(self, namespace: str, name: str) -> str | None:
        proc = self.processes.get((namespace, name))
        return None if proc is None else f"{proc.ip}:{proc.port}"


def _open_log(target: Path) -> IO[bytes]:
    return open(target, "ab")


def _owner_name(obj: JSON, kind: str) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == kind:
            return str(ref.get("name"))
    return None


def _cond(ctype: str, ok: bool) -> JSON:
    return {"type": ctype, "status": "True" if ok else "False", "lastTransitionTime": now()}


def _container(name: str, state: JSON, *, ready: bool = False, restarts: int = 0) -> JSON:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": state,
        "image": "",
        "imageID": "",
    }


def _scheduled(
    phase: str, cname: str, state: JSON, *, ready: bool = False, restarts: int = 0
) -> JSON:
    """The status of a scheduled pod whose one container is in `state`."""
    return {
        "phase": phase,
        "conditions": [_cond("PodScheduled", True), _cond("Ready", ready)],
        "containerStatuses": [_container(cname, state, ready=ready, restarts=restarts)],
    }


def _waiting(cname: str, reason: str, message: str) -> JSON:
    return _scheduled("Pending", cname, {"waiting": {"reason": reason, "message": message}})
