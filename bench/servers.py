"""The benchmark's servers and tools: nginx, the Go gRPC server, the counting server, wrk.

Each one is installed or built on demand (apt-get for wrk and nginx-light, `go build`
through the Go module proxy for the gRPC server) and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness import BENCH, CACHE, Proc, get_json, http, log

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location = /__stub {{ stub_status; }}
        location / {{ return 200 "ok"; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_apt_tools() -> list[str]:
    """wrk and nginx via apt-get when missing (needs root); returns what is still missing."""
    missing = [name for name in ("wrk", "nginx") if not _which(name)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {', '.join(missing)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        packages = ["wrk" if m == "wrk" else "nginx-light" for m in missing]
        cmd = ["apt-get", "install", "-y", "-qq", *packages]
        if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
            subprocess.run(cmd, env=env, capture_output=True, check=False)
    return [name for name in ("wrk", "nginx") if not _which(name)]


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


class Nginx(Proc):
    """nginx, one worker, keep-alive, `return 200 "ok"`, access log off, stub_status on."""

    def __init__(self, cpu: int | None) -> None:
        self.port = free_port()
        prefix = CACHE / "nginx"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=self.port))
        nginx = _which("nginx") or "nginx"
        argv = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        super().__init__(argv, cpu=cpu, wait_ready=False, log_name="nginx")
        self.url = f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> Nginx:
        super().__enter__()
        _wait_for_port(self.port)
        return self

    def count(self) -> int:
        """Requests nginx has answered (stub_status; the reading itself counts one)."""
        text = http("GET", f"http://127.0.0.1:{self.port}/__stub").decode()
        return int(text.splitlines()[2].split()[2])


class CountServer(Proc):
    """bench/countsrv.py: 200 ok, arrivals counted in 10 ms bins on CLOCK_MONOTONIC."""

    def __init__(self, cpu: int | None) -> None:
        super().__init__(
            [sys.executable, str(BENCH / "countsrv.py"), "--port", "0"],
            cpu=cpu,
            log_name="countsrv",
        )
        self.url = ""

    def __enter__(self) -> CountServer:
        super().__enter__()
        self.url = "http://" + self.ready_line.split()[-1] + "/"
        return self

    def bins(self) -> tuple[float, float, list[int]]:
        doc = get_json(self.url + "__bins")
        return float(doc["t0"]), float(doc["binSeconds"]), [int(c) for c in doc["counts"]]


def build_grpc_server() -> tuple[Path | None, str]:
    """`go build` bench/grpc_server (modules from the Go module proxy); (binary, note)."""
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        return None, "no go toolchain"
    out = CACHE / "grpc_server"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod")
    done = subprocess.run(
        [go, "build", "-o", str(out), "."],
        cwd=BENCH / "grpc_server",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        return None, "go build failed: " + done.stderr.strip()[-500:]
    return out, "go " + subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=False
    ).stdout.strip()


class GrpcServer(Proc):
    """The Go health+reflection server (GOMAXPROCS=1), counting calls on a stats port.

    Without a binary, the Python fallback (bench/grpc_py_server.py) with the same interface.
    """

    def __init__(self, binary: Path | None, cpu: int | None) -> None:
        env = dict(os.environ, GOMAXPROCS="1")
        command = [str(binary)] if binary else [sys.executable, str(BENCH / "grpc_py_server.py")]
        super().__init__(
            [*command, "--listen", "127.0.0.1:0", "--stats", "127.0.0.1:0"],
            cpu=cpu,
            env=env,
            log_name="grpc_server",
        )
        self.address = ""
        self.stats_url = ""

    def __enter__(self) -> GrpcServer:
        super().__enter__()
        # "listening 127.0.0.1:PORT stats 127.0.0.1:PORT"
        parts = self.ready_line.split()
        self.address = parts[1]
        self.stats_url = f"http://{parts[3]}/count"
        return self

    def count(self) -> int:
        return int(http("GET", self.stats_url).decode().strip())


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")
