"""Start, watch and stop N `kar98k-loadpod` processes on 127.0.0.1 for a local run.

No stray processes, whatever happens: every pod runs in its own process group (so a terminal's
Ctrl-C reaches the runner, which drains them, not the pods directly), is asked to die with the
runner on Linux (PR_SET_PDEATHSIG), and `stop()` terminates each group, then kills what is left
after a deadline. Ports are chosen by the kernel (`--listen 127.0.0.1:0`) and read back from
the pod's single stdout line, so two runs can never race for one port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from kar98k.controller.pods import PodEndpoint

LISTENING = "listening on "
STOP_GRACE = 5.0  # SIGTERM lets a pod drain; after this it is killed
_PR_SET_PDEATHSIG = 1


class PodStartError(Exception):
    """The pods could not all be started and made ready (exit code 2 territory)."""


@dataclass
class LocalPod:
    """One load-pod process."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    base_url: str = ""
    pgid: int = 0
    ready: bool = False
    exit_noted: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def loadpod_command() -> list[str]:
    """The `kar98k-loadpod` next to this interpreter, else the same program via `-m`."""
    script = Path(sys.executable).parent / "kar98k-loadpod"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "kar98k_loadpod.main"]


def _resolve_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up in the parent: the child must not run the dynamic loader."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _resolve_prctl()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the pod gets SIGTERM (and drains) if the runner dies without cleaning up."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class LocalPods:
    """An async context manager owning the pod processes; `stop()` is idempotent."""

    def __init__(
        self, count: int, *, start_timeout: float = 30.0, name_prefix: str = "pod"
    ) -> None:
        if count < 1:
            raise ValueError("need at least one pod")
        self.count = count
        self.start_timeout = start_timeout
        self.token = secrets.token_urlsafe(32)
        self.pods: list[LocalPod] = []
        self._prefix = name_prefix
        self._logdir = tempfile.TemporaryDirectory(prefix="kar98k-pods-")
        self._stopped = False

    async def __aenter__(self) -> LocalPods:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def log_dir(self) -> Path:
        return Path(self._logdir.name)

    def endpoints(self) -> list[PodEndpoint]:
        """PodSource: the ready pods whose process is still running."""
        return [
            PodEndpoint(p.name, p.base_url, self.token) for p in self.pods if p.ready and p.alive
        ]

    async def start(self) -> None:
        """Spawn every pod, then wait (concurrently, with one deadline) until all are ready."""
        env = dict(os.environ)
        env["KAR98K_TOKEN"] = self.token
        env.pop("KAR98K_LISTEN", None)
        command = loadpod_command()
        for index in range(self.count):
            name = f"{self._prefix}-{index}"
            log_path = self.log_dir / f"{name}.log"
            log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                process = await asyncio.create_subprocess_exec(
                    *command,
                    "--listen",
                    "127.0.0.1:0",
                    "--name",
                    name,
                    "--log-level",
                    "warning",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log_fd,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if _PRCTL is not None else None,
                )
            finally:
                os.close(log_fd)
            pod = LocalPod(name, process, log_path)
            pod.pgid = process.pid  # start_new_session: the pod leads its own group
            self.pods.append(pod)
        deadline = time.monotonic() + self.start_timeout
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *(self._await_ready(p, session, deadline) for p in self.pods),
                return_exceptions=True,
            )
        problems = [str(r) for r in results if isinstance(r, BaseException)]
        if problems:
            raise PodStartError("; ".join(problems))

    async def _await_ready(
        self, pod: LocalPod, session: aiohttp.ClientSession, deadline: float
    ) -> None:
        stdout = pod.process.stdout
        assert stdout is not None
        try:
            line = await asyncio.wait_for(stdout.readline(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            raise PodStartError(
                f"{pod.name}: no 'listening' line within {self.start_timeout:g}s"
            ) from None
        text = line.decode(errors="replace").strip()
        if not text.startswith(LISTENING):
            await self._reap_briefly(pod)
            detail = pod.log_tail() or text or f"exit code {pod.process.returncode}"
            raise PodStartError(f"{pod.name} did not start: {detail}")
        pod.base_url = text[len(LISTENING) :]
        url = pod.base_url + "/readyz"
        while True:
            if not pod.alive:
                raise PodStartError(
                    f"{pod.name} exited ({pod.process.returncode}): {pod.log_tail()}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                    if resp.status == 200:
                        pod.ready = True
                        return
            if time.monotonic() >= deadline:
                raise PodStartError(f"{pod.name}: not ready within {self.start_timeout:g}s")
            await asyncio.sleep(0.05)

    @staticmethod
    async def _reap_briefly(pod: LocalPod) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pod.process.wait(), 2.0)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM every pod's group, wait up to `grace`, SIGKILL the rest, reap them all."""
        if self._stopped:
            return
        self._stopped = True
        for pod in self.pods:
            _signal_group(pod, signal.SIGTERM)
        waits = [asyncio.ensure_future(p.process.wait()) for p in self.pods]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=grace)
            if pending:
                for pod in self.pods:
                    _signal_group(pod, signal.SIGKILL)
                await asyncio.wait(pending, timeout=5.0)
        self._logdir.cleanup()

    def kill_now(self) -> None:
        """Hard stop (second Ctrl-C, or an emergency): SIGKILL every group at once."""
        for pod in self.pods:
            _signal_group(pod, signal.SIGKILL)


def _signal_group(pod: LocalPod, sig: signal.Signals) -> None:
    """Signal the pod's group while its leader is unreaped (so the pgid cannot be reused)."""
    if not pod.alive:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pod.pgid, sig)
