"""HTTP/2 section of the benchmark: nghttpd (h2c and TLS), h2load as the reference, the pod paced.

Server: nghttpd (nghttp2's C server), one worker, on the server core; nginx's http2 module
answered h2load at a few thousand requests per second here with 10-100 ms stalls, nghttpd
at 50k-165k/s (docs/decisions.md, "HTTP/2 bench"). nghttpd cannot report a request count,
so on h2c the server's count is its bytes written (/proc/PID/io wchar) divided by the bytes
of one answer, calibrated by a fixed-count h2load run; every reference run cross-checks
that count against h2load's own. Over TLS, record sizes vary with batching, so "achieved"
there is the pod's own count of answered requests. The TLS certificate is made at run
time (openssl); the pod skips verification for it (`tlsInsecureSkipVerify`).

Reference: `h2load` (nghttp2's C load generator) on the generator core, closed loop, once
with 4 connections × 16 streams and once with the connection/stream shape the pod uses.

Also run as a subprocess (`python bench/http2_bench.py --closed-loop URL`): the pod's
HTTP/2 executor alone, closed loop, no pacer, printing one JSON line. And by hand,
`python bench/http2_bench.py --compare OTHER/loadpod`: two pods side by side, paced.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
from exec_closed_loop import closed_loop
from harness import CACHE, Cores, Pod, Proc, log, measure, run_pinned, step
from kar98k_loadpod.executors.http2_fast import FastHttp2Executor
from kar98k_loadpod.targets import Target
from servers import _wait_for_port, _which, free_port

# What the pod opens: maxInFlight 256 → at most 3 connections (one per 100 in flight), each
# carrying up to the server's 128 streams; paced below its ceiling it rarely needs a second.
POD_SHAPE = (1, 128)
REFERENCE_SHAPE = (4, 16)


TOOLS = {"h2load": "nghttp2-client", "nghttpd": "nghttp2-server"}


def ensure_tools() -> str | None:
    """h2load and nghttpd via apt-get when missing (needs root); None, or what is missing."""
    missing = [tool for tool in TOOLS if not _which(tool)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {', '.join(TOOLS[m] for m in missing)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", *(TOOLS[m] for m in missing)]
        if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
            subprocess.run(cmd, env=env, capture_output=True, check=False)
    still = [TOOLS[tool] for tool in TOOLS if not _which(tool)]
    return f"missing {', '.join(still)} (apt-get install them)" if still else None


def tool_version(tool: str) -> str:
    done = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""


def self_signed(prefix: Path) -> None:
    """A throw-away certificate for 127.0.0.1/localhost, made fresh for every run."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(prefix / "key.pem"),
            "-out",
            str(prefix / "cert.pem"),
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )


class Nghttpd(Proc):
    """nghttpd (nghttp2's C server), one worker, 128 streams per connection, serving "ok" at /.

    Over TLS with a certificate made for this run, or h2c (prior knowledge) with `tls=False`.
    """

    def __init__(self, cpu: int | None, *, tls: bool) -> None:
        self.port = free_port()
        root = CACHE / "nghttpd"
        (root / "htdocs").mkdir(parents=True, exist_ok=True)
        (root / "htdocs" / "index.html").write_text("ok")
        argv = [_which("nghttpd") or "nghttpd", "-a", "127.0.0.1", "-n", "1", "-m", "128"]
        argv += ["-d", str(root / "htdocs"), str(self.port)]
        if tls:
            self_signed(root)
            argv += [str(root / "key.pem"), str(root / "cert.pem")]
        else:
            argv.insert(1, "--no-tls")
        super().__init__(
            argv, cpu=cpu, wait_ready=False, log_name="nghttpd-tls" if tls else "nghttpd"
        )
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/"

        self.bytes_per_response = 0.0  # calibrated by h2load (see `calibrate`)

    def __enter__(self) -> Nghttpd:
        super().__enter__()
        _wait_for_port(self.port)
        return self

    def written(self) -> int:
        """Bytes nghttpd has passed to write(): what went onto its sockets (TLS: ciphertext)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/io") as fh:
            for line in fh:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
        raise RuntimeError("no wchar in /proc/PID/io")

    def calibrate(self, written: int, answered: int) -> None:
        """Every h2c answer to the same request is the same frames (HEADERS from the HPACK
        table, DATA "ok"), so bytes written per answer, taken from an h2load run whose
        answered count h2load reports, turns the server's byte count into a request count."""
        self.bytes_per_response = written / max(1, answered)

    def count(self) -> int:
        """Requests answered, from the bytes written (h2c only: TLS records vary in size)."""
        if self.bytes_per_response <= 0:
            raise RuntimeError("count() before calibrate()")
        return int(self.written() / self.bytes_per_response)


def h2load(url: str, cores: Cores, args: list[str], timeout: float) -> tuple[float, int, int]:
    """One h2load run on the generator core: (req/s, requests done, requests succeeded)."""
    out = run_pinned(["h2load", "-t1", *args, url], cpu=cores.generator, timeout=timeout)
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not rate or not done:
        raise RuntimeError(f"cannot read h2load output:\n{out}")
    return float(rate.group(1)), int(done.group(1)), int(done.group(2))


def calibrate(server: Nghttpd, cores: Cores, requests: int = 20_000) -> None:
    """Bytes per answer from a fixed-count h2load run (h2c: exact; see Nghttpd.calibrate)."""
    before = server.written()
    _, done, _ = h2load(server.url, cores, ["-c1", "-m16", f"-n{requests}"], 60)
    server.calibrate(server.written() - before, done)


def h2load_rate(
    server: Nghttpd, cores: Cores, seconds: float, shape: tuple[int, int], *, counts: bool
) -> dict[str, Any]:
    """h2load closed loop for `seconds`: its rate, and the server's count of the same run."""
    clients, streams = shape
    before = server.count() if counts else 0
    args = [f"-c{clients}", f"-m{streams}", f"-D{max(1, int(seconds))}"]
    rate, done, ok = h2load(server.url, cores, args, seconds + 60)
    result: dict[str, Any] = {"rate": rate, "done": done, "succeeded": ok}
    if counts:
        # The cross-check of the server's count: it must agree with h2load's own.
        result["serverCounted"] = server.count() - before
    return result


def closed_loop_executor(url: str, cores: Cores, seconds: float, in_flight: int) -> float:
    out = run_pinned(
        [
            sys.executable,
            str(Path(__file__)),
            "--closed-loop",
            url,
            "--seconds",
            str(seconds),
            "--in-flight",
            str(in_flight),
        ],
        cpu=cores.generator,
        timeout=seconds + 60,
    )
    return float(json.loads(out.strip().splitlines()[-1])["rate"])


def h2_section(
    cores: Cores,
    budget: Any,
    out: dict[str, Any],
    find_ceiling: Callable[..., dict[str, Any]],
) -> None:
    """Per scheme: h2load, the executor alone, then the paced ceiling of a real pod."""
    missing = ensure_tools()
    if missing is not None:
        out["skipped"] = missing
        log(missing)
        return
    out["server"] = "nghttpd, one worker, 128 streams per connection"
    out["tools"] = {tool: tool_version(tool) for tool in TOOLS}
    for scheme in ("h2c", "tls"):
        counts = scheme == "h2c"
        with Nghttpd(cores.server, tls=not counts) as server:
            part: dict[str, Any] = {
                "counting": "server: bytes written / bytes per answer (calibrated by h2load)"
                if counts
                else "pod: answered requests (TLS record sizes vary, the server cannot count)"
            }
            if counts:
                calibrate(server, cores)
                part["bytesPerAnswer"] = round(server.bytes_per_response, 3)
            ref: dict[str, Any] = {}
            for shape in (REFERENCE_SHAPE, POD_SHAPE):
                name = f"h2load -c{shape[0]} -m{shape[1]}"
                with step(f"{scheme}: {name} (closed loop)"):
                    ref[name] = r = h2load_rate(
                        server, cores, budget.ref_seconds, shape, counts=counts
                    )
                    log(
                        f"{name}: {r['rate']:.0f}/s, done {r['done']}, "
                        f"server counted {r.get('serverCounted')}"
                    )
            with step(f"{scheme}: pod HTTP/2 executor alone, 128 in flight (no pacer)"):
                ref["executor"] = closed_loop_executor(
                    server.url, cores, budget.ref_seconds / 2, 128
                )
                log(f"executor alone: {ref['executor']:.0f}/s")
            part["reference"] = ref
            target: dict[str, Any] = {"name": "h2", "url": server.url, "protocol": "http2"}
            if not counts:
                target["tlsInsecureSkipVerify"] = True
            counter = server.count if counts else None
            with step(f"{scheme}: load pod ceiling (HTTP/2, paced)"), Pod(cores.generator) as pod:
                ceiling = find_ceiling(pod, [target], counter, 0, budget, server_proc=server)
            part["ceiling"] = ceiling
            part["cpuPerRequestUs"] = cpu_per_request(ceiling["steps"])
            best = max(r["rate"] for k, r in ref.items() if k.startswith("h2load"))
            part["ratios"] = {
                "podToH2load": round(ceiling["ceiling"] / best, 4),
                "podToExecutorAlone": round(ceiling["ceiling"] / max(1.0, ref["executor"]), 3),
            }
        out[scheme] = part


def cpu_per_request(steps: list[dict[str, Any]]) -> float | None:
    """The pod's CPU per answered request (µs, median over passing steps at ≥ 5,000/s).

    On a shared machine other processes take the generator core and late sends end the
    search early; CPU per request is what the pod itself costs, whatever it was left, and
    1 / it is the rate one whole core could carry.
    """
    costs = [
        s["podCpu"] / (s["podRate"] or 1) * 1e6
        for s in steps
        if s["pass"] and s["planned"] >= 5000 and s["podRate"]
    ]
    return round(statistics.median(costs), 1) if costs else None


GOAL_H2C = 15_000.0  # issue 14 goal 2: requests per second held paced on one core, h2c


def goals(h2: dict[str, Any]) -> dict[str, bool]:
    part = h2.get("h2c")
    return {"h2cAtLeast15kPerCore": part["ceiling"]["ceiling"] >= GOAL_H2C} if part else {}


def table_rows(h2: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    if h2.get("skipped"):
        return [("HTTP/2", "skipped", h2["skipped"][:60])]
    for scheme in ("h2c", "tls"):
        part = h2.get(scheme)
        if not part:
            continue
        ref = part["reference"]
        for name, r in ref.items():
            if name.startswith("h2load"):
                rows.append((f"{scheme}: {name} (closed loop)", f"{r['rate']:.0f}/s", "reference"))
        rows.append(
            (f"{scheme}: pod executor alone, 128 in flight", f"{ref['executor']:.0f}/s", "")
        )
        c = part["ceiling"]
        note = f"{part['ratios']['podToH2load']:.3f}× h2load (best shape)"
        if not c["ceiling"]:
            note = f"not confirmed (search reached {c['searchCeiling']:.0f}/s)"
        rows.append((f"{scheme}: load pod ceiling, HTTP/2 (paced)", f"{c['ceiling']:.0f}/s", note))
        cost = part.get("cpuPerRequestUs")
        if cost:
            rows.append(
                (
                    f"{scheme}: pod CPU per request (passing steps)",
                    f"{cost:.1f} µs",
                    f"1 core: {1e6 / cost:.0f}/s",
                )
            )
    return rows


# --- the executor alone (subprocess mode) ------------------------------------------------------


async def _closed_loop(url: str, seconds: float, in_flight: int) -> dict[str, float]:
    target = Target.model_validate(
        {"name": "bench", "url": url, "protocol": "http2", "tlsInsecureSkipVerify": True}
    )
    return await closed_loop(FastHttp2Executor(target, 256), in_flight, seconds)


def compare(other_loadpod: Path, rates: list[float], rounds: int) -> None:
    """Paced, side by side: a pod importing kar98k_loadpod from `other_loadpod` (e.g. another
    worktree's `loadpod/` directory) against this tree's, same h2c server, interleaved."""
    cores = Cores.detect()
    here = Path(__file__).resolve().parent.parent / "loadpod"
    with Nghttpd(cores.server, tls=False) as server:
        calibrate(server, cores)
        target = [{"name": "h2", "url": server.url, "protocol": "http2"}]
        for _ in range(rounds):
            for rate in rates:
                for name, path in (("other", other_loadpod), ("this", here)):
                    os.environ["PYTHONPATH"] = str(path)  # the pod process inherits it
                    with Pod(cores.generator) as pod:
                        pod.plan(rate, target)
                        time.sleep(1.0)
                        w = measure(pod, rate, 3.0, server.count, 0, server_proc=server)
                    per_request = w.pod_cpu / max(1.0, w.pod_rate) * 1e6
                    print(
                        f"{name:5} {rate:>7.0f}/s: server {w.achieved / rate:.4f}, "
                        f"late {w.late_fraction:6.2%}, pod cpu {w.pod_cpu:5.1%}, "
                        f"{per_request:5.1f} µs/request, "
                        f"others {w.foreign_cpu:.0%}/{w.foreign_server_cpu:.0%}",
                        flush=True,
                    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--closed-loop", metavar="URL", help="the executor alone against URL")
    mode.add_argument("--compare", type=Path, metavar="LOADPOD_DIR", help="paced, side by side")
    parser.add_argument("--rates", default="5000,10000", help="--compare: planned rates")
    parser.add_argument("--rounds", type=int, default=2, help="--compare: repetitions")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--in-flight", type=int, default=128)
    args = parser.parse_args()
    if args.compare is not None:
        compare(args.compare, [float(r) for r in args.rates.split(",")], args.rounds)
        sys.exit(0)
    assert args.closed_loop.startswith(("http://127.", "https://127.")), "loopback only"
    print(json.dumps(uvloop.run(_closed_loop(args.closed_loop, args.seconds, args.in_flight))))
    sys.exit(0)
