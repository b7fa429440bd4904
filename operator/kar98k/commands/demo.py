"""`kar98k demo`: a real, spiky load test against a built-in target, on one machine, in a minute.

The demo target (HTTP/1.1, HTTP/2 h2c and gRPC servers from `kar98k.demo`) runs in a child
process, so serving ~600 req/s never delays the controller's 100 ms tick in this process. The
child binds free loopback ports, announces them as one JSON line on stdout, and lives exactly as
long as its stdin is open: when this process ends, however it ends, the pipe closes and the
child exits. It starts in its own session, so a terminal's Ctrl-C reaches only the runner,
which drains the pods while the target keeps answering.

`examples/demo.yaml` (a packaged copy ships as `kar98k/commands/demo.yaml`) names the target's
default ports 18080/18081/18082 on 127.0.0.1; those URLs are rewritten to the bound ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kar98k.demo.lifecycle import until_stdin_closes
from kar98k.report import ReportFormatError, check_report_path
from kar98k.spec import LoadTest, ManifestReadError, SpecError, parse_manifest, read_documents

from . import Subparsers, _args

NAME = "demo"
HELP = "run a spiky demo load test against a built-in loopback target"
HOST = "127.0.0.1"
DEFAULT_REPORTS = ("kar98k-demo-report.html", "kar98k-demo-report.json")
MANIFEST_RESOURCE = "demo.yaml"
FIND_MAX_RESOURCE = "demo-find-max.yaml"  # the packaged copy of examples/find-max.yaml
CAPACITY_WORKERS = 4
CAPACITY_SERVICE_TIME = 0.010  # 4 workers × 10 ms: 400 req/s
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class DemoPorts:
    """The listening ports of the demo target."""

    http: int
    h2: int
    grpc: int
    capacity: int = 0


DEFAULT_PORTS = DemoPorts(http=18080, h2=18081, grpc=18082, capacity=18083)


DESCRIPTION = (
    "Start a demo target on 127.0.0.1 (HTTP/1.1, HTTP/2 h2c and gRPC endpoints: one slow, one "
    "failing ~3 % of requests), run examples/demo.yaml against it with local load pods (a base "
    "of 200 req/s, spikes to 3x every 10-15 s, noise), show live progress and write "
    f"{DEFAULT_REPORTS[0]} and {DEFAULT_REPORTS[1]}. Exit codes as for `kar98k run`."
)


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(NAME, help=HELP, description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=_args.duration, default=None, help="run length, e.g. 30s (default 45s)"
    )
    parser.add_argument("--pods", type=_positive_int, default=2, help="load pods (default 2)")
    parser.add_argument(
        "--report",
        action="append",
        type=Path,
        default=None,
        metavar="PATH",
        help="report file, .json/.html/.xml; repeatable "
        f"(default {DEFAULT_REPORTS[0]} and {DEFAULT_REPORTS[1]})",
    )
    parser.add_argument("--seed", type=_seed, default=None, help="seed for spikes and noise")
    parser.add_argument(
        "--no-live", action="store_true", help="log lines instead of the live terminal display"
    )
    parser.add_argument(
        "--find-max",
        action="store_true",
        help="instead of the spiky run, a short capacity search (about 20 s, "
        "examples/find-max.yaml) against a target that serves 400 req/s",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="only run the demo target on ports 18080 (HTTP/1.1), 18081 (h2c), 18082 (gRPC), "
        "18083 (capacity, 400/s) until Ctrl-C, for `kar98k run examples/demo.yaml` or "
        "`kar98k find-max examples/find-max.yaml` in another terminal",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Entry point the CLI calls with parsed arguments; returns the exit code."""
    if args.serve or args.child:
        ports = DemoPorts(0, 0, 0, 0) if args.child else DEFAULT_PORTS
        return asyncio.run(serve(ports, child=args.child))
    try:
        manifest = load_demo_manifest(FIND_MAX_RESOURCE if args.find_max else MANIFEST_RESOURCE)
    except (ManifestReadError, SpecError) as exc:
        print(f"kar98k demo: {exc}", file=sys.stderr)
        return 2
    reports = list(args.report) if args.report else [Path(p) for p in DEFAULT_REPORTS]
    try:
        for path in reports:  # before the target starts: a typo costs a second, not a run
            check_report_path(path)
    except ReportFormatError as exc:
        print(f"kar98k demo: --report {exc}", file=sys.stderr)
        return 2
    live = False if args.no_live else None
    return asyncio.run(
        _demo(
            manifest,
            pods=args.pods,
            duration=args.duration,
            reports=reports,
            seed=args.seed,
            live=live,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kar98k.commands.demo`: how the child target process is started."""
    parser = argparse.ArgumentParser(prog="kar98k demo", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def load_demo_manifest(name: str = MANIFEST_RESOURCE) -> LoadTest:
    """The packaged copy of examples/demo.yaml (present in wheels, where examples/ is not), or
    of examples/find-max.yaml."""
    resource = resources.files(__package__).joinpath(name)
    with resources.as_file(resource) as path:
        docs = read_documents(path)
    return parse_manifest(docs[0])


def retarget(manifest: LoadTest, ports: DemoPorts, defaults: DemoPorts = DEFAULT_PORTS) -> LoadTest:
    """A copy whose 127.0.0.1 URLs on a default demo port point at the bound port instead."""
    mapping = {
        defaults.http: ports.http,
        defaults.h2: ports.h2,
        defaults.grpc: ports.grpc,
        defaults.capacity: ports.capacity,
    }
    targets = []
    for target in manifest.spec.targets:
        parts = urlsplit(target.url)
        if parts.hostname == HOST and parts.port in mapping:
            url = urlunsplit(parts._replace(netloc=f"{HOST}:{mapping[parts.port]}"))
            targets.append(target.model_copy(update={"url": url}))
        else:
            targets.append(target)
    spec = manifest.spec.model_copy(update={"targets": targets})
    return manifest.model_copy(update={"spec": spec})


async def _demo(
    manifest: LoadTest,
    *,
    pods: int,
    duration: float | None,
    reports: list[Path],
    seed: int | None,
    live: bool | None,
) -> int:
    # Imported here, not at the top: the CLI may import every command module to build its
    # parser, and the child target process needs neither the runner nor the controller.
    from kar98k.local import run_local  # noqa: PLC0415

    target = await _start_target()
    if target is None:
        return 2
    process, ports = target
    counts: dict[str, Any] | None = None
    try:
        print(
            f"demo target: http://{HOST}:{ports.http} (HTTP/1.1), http://{HOST}:{ports.h2} "
            f"(HTTP/2 h2c), grpc://{HOST}:{ports.grpc} (gRPC)",
            flush=True,
        )
        if manifest.spec.search is not None:
            print(
                f"capacity target: http://{HOST}:{ports.capacity}/work "
                f"({CAPACITY_WORKERS} workers × {CAPACITY_SERVICE_TIME * 1000:g} ms: "
                f"{CAPACITY_WORKERS / CAPACITY_SERVICE_TIME:g} req/s)",
                flush=True,
            )
        code = await run_local(
            retarget(manifest, ports),
            pods=pods,
            duration=duration,
            reports=reports,
            seed=seed,
            live=live,
            search=manifest.spec.search,
        )
    finally:
        counts = await _stop_target(process)
    if counts:
        print(_counts_line(counts), flush=True)
    pages = [p.resolve() for p in reports if p.suffix.lower() in (".html", ".htm") and p.is_file()]
    for page in pages:
        print(f"open {page.as_uri()}", flush=True)
    return code


async def _start_target() -> tuple[asyncio.subprocess.Process, DemoPorts] | None:
    """Start the child target and read its ports; None (after saying why) when it cannot."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kar98k.commands.demo",
        "--child",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        ports = DemoPorts(**json.loads(line)["ports"])
    except (TimeoutError, ValueError, KeyError, TypeError):
        await _stop_target(process)
        print("kar98k demo: the demo target did not start (see its error above)", file=sys.stderr)
        return None
    return process, ports


async def _stop_target(process: asyncio.subprocess.Process) -> dict[str, Any] | None:
    """Close the child's stdin (its signal to stop) and collect the counts it prints last."""
    if process.stdin is not None:
        process.stdin.close()
    counts: dict[str, Any] | None = None
    try:
        assert process.stdout is not None
        out = await asyncio.wait_for(process.stdout.read(), STOP_TIMEOUT)
        lines = out.decode(errors="replace").strip().splitlines()
        if lines:
            counts = json.loads(lines[-1]).get("counts")
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except (TimeoutError, ValueError, AttributeError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    return counts


def _counts_line(counts: dict[str, Any]) -> str:
    http1, h2, grpc = int(counts["http1"]), int(counts["h2"]), int(counts["grpc"])
    capacity = int(counts.get("capacity", 0))
    line = (
        f"demo target counted {http1 + h2 + grpc + capacity:,} requests: HTTP/1.1 {http1:,} · "
        f"HTTP/2 {h2:,} · gRPC {grpc:,}"
    )
    return line + (f" · capacity {capacity:,}" if capacity else "")


async def serve(ports: DemoPorts, *, child: bool) -> int:
    """Run the three demo servers until stdin closes (child) or SIGINT/SIGTERM (--serve)."""
    from kar98k.demo.capacity import CapacityServer  # noqa: PLC0415
    from kar98k.demo.grpc_server import DemoGrpcServer  # noqa: PLC0415 (grpc is slow to import)
    from kar98k.demo.h2_server import DemoH2Server  # noqa: PLC0415
    from kar98k.demo.http_server import DemoHttpServer  # noqa: PLC0415

    http = DemoHttpServer(HOST, ports.http, seed=1)
    h2 = DemoH2Server(HOST, ports.h2, seed=2)
    grpc = DemoGrpcServer(HOST, ports.grpc)
    capacity = CapacityServer(
        HOST, ports.capacity, workers=CAPACITY_WORKERS, service_time=CAPACITY_SERVICE_TIME
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM,) if child else (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        bound = DemoPorts(
            await http.start(), await h2.start(), await grpc.start(), await capacity.start()
        )
    except OSError as exc:
        print(f"kar98k demo: cannot start the demo target: {exc}", file=sys.stderr)
        return 2
    try:
        if child:
            print(json.dumps({"ports": asdict(bound)}), flush=True)
            await until_stdin_closes(stop)
        else:
            print(
                f"demo target on http://{HOST}:{bound.http} (HTTP/1.1), "
                f"http://{HOST}:{bound.h2} (HTTP/2 h2c), grpc://{HOST}:{bound.grpc} (gRPC), "
                f"http://{HOST}:{bound.capacity}/work (capacity 400/s); Ctrl-C stops it",
                flush=True,
            )
            await stop.wait()
    finally:
        await asyncio.gather(
            http.stop(), h2.stop(), grpc.stop(), capacity.stop(), return_exceptions=True
        )
    counts = {
        "http1": http.counter.total,
        "h2": h2.counter.by_protocol.get("2", 0),
        "grpc": grpc.counter.total,
        "capacity": capacity.counter.total,
        "by_key": {
            "http1": dict(http.counter.by_key),
            "h2": dict(h2.counter.by_key),
            "grpc": dict(grpc.counter.by_key),
        },
    }
    if child:
        print(json.dumps({"counts": counts}), flush=True)
    else:
        print(_counts_line(counts), flush=True)
    return 0


def _seed(text: str) -> int:
    value = _positive_int(text, minimum=0)
    return value


def _positive_int(text: str, minimum: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
