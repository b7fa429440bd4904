"""`kar98k-loadpod`: the load pod process (control API + pacer), drains on SIGTERM.

Exit codes: 0 after a clean shutdown, 2 when it cannot start (no token, bad --listen,
port in use). Logs are one JSON object per line on stderr; the token and header values
are never logged. Once serving, stdout gets exactly one line: `listening on http://HOST:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from aiohttp import web

from . import __version__
from .api import ControlRunner, make_app
from .metrics import make_registry
from .runtime import PodRuntime

DEFAULT_LISTEN = "0.0.0.0:8080"
DEFAULT_DRAIN_TIMEOUT = 10.0
EXIT_OK = 0
EXIT_CANNOT_START = 2

log = logging.getLogger("kar98k_loadpod")


class CannotStart(Exception):
    """Configuration or environment problem: exit 2."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line; structured fields come from `extra={"kv": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        kv = getattr(record, "kv", None)
        if isinstance(kv, dict):
            for key, value in kv.items():
                entry.setdefault(str(key), value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would repeat every plan push; keep it quiet unless debugging.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT', '[v6]:PORT' or ':PORT' (all interfaces)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        raise CannotStart(f"--listen must be HOST:PORT, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    try:
        port = int(port_text)
    except ValueError:
        raise CannotStart(f"--listen: bad port in {text!r}") from None
    if not 0 <= port <= 65535:
        raise CannotStart(f"--listen: port out of range in {text!r}")
    return host, port


def read_token(token_file: str | None) -> str:
    """--token-file, else KAR98K_TOKEN; an empty or missing token refuses to start."""
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise CannotStart(f"cannot read --token-file: {exc.strerror}") from None
        if not token:
            raise CannotStart("--token-file is empty")
        return token
    # Out of the environment once read: nothing later (header expansion, a child process)
    # can reach the pod's own credential through it.
    token = os.environ.pop("KAR98K_TOKEN", "").strip()
    if not token:
        raise CannotStart("no token: pass --token-file PATH or set KAR98K_TOKEN")
    return token


def pod_name(explicit: str | None) -> str:
    return (
        explicit
        or os.environ.get("KAR98K_POD_NAME")
        or os.environ.get("HOSTNAME")
        or socket.gethostname()
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kar98k-loadpod", description="kar98k load pod: paced load driven by a control API."
    )
    parser.add_argument(
        "--listen",
        default=None,
        help=f"HOST:PORT for the control API (env KAR98K_LISTEN, default {DEFAULT_LISTEN}; "
        "port 0 picks a free port)",
    )
    parser.add_argument("--token-file", default=None, help="bearer token file (else KAR98K_TOKEN)")
    parser.add_argument("--name", default=None, help="pod name (else KAR98K_POD_NAME, HOSTNAME)")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=float(os.environ.get("KAR98K_DRAIN_TIMEOUT", DEFAULT_DRAIN_TIMEOUT)),
        help="seconds to wait for in-flight requests on SIGTERM (default 10)",
    )
    parser.add_argument(
        "--log-level", default=os.environ.get("KAR98K_LOG_LEVEL", "info"), help="default info"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


async def serve(host: str, port: int, token: str, name: str, drain_timeout: float) -> int:
    """Serve until SIGTERM/SIGINT, then drain and stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, sig)

    runtime = PodRuntime(name)
    runtime.start()
    app = make_app(runtime, token, make_registry(runtime))
    runner = ControlRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    # Everything built so far (modules, app, runtime: ~65k objects) lives as long as the
    # process: move it out of the collector's reach. Otherwise each full collection walks it
    # all, a 20-85 ms pause under load that shows up as bursts of late sends (bench/).
    gc.freeze()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise CannotStart(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        bound_host, bound_port = _bound(runner, host, port)
        url = f"http://{bound_host}:{bound_port}"
        log.info("listening", extra={"kv": {"url": url, "pod": name}})
        print(f"listening on {url}", flush=True)

        await stop.wait()
        log.info("shutting down: draining", extra={"kv": {"timeout_seconds": drain_timeout}})
        final = await runtime.drain(drain_timeout)
        log.info(
            "drained; exiting",
            extra={"kv": {"requests": final.requests, "inFlight": final.in_flight}},
        )
    finally:
        await runner.cleanup()
        await runtime.close()
    return EXIT_OK


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if stop.is_set():
        log.info("already shutting down", extra={"kv": {"signal": sig.name}})
    else:
        log.info("signal received", extra={"kv": {"signal": sig.name}})
    stop.set()


def _bound(runner: web.AppRunner, host: str, port: int) -> tuple[str, int]:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound = str(address[0])
            shown = host if host not in ("", "0.0.0.0", "::") else bound
            if ":" in shown:
                shown = f"[{shown}]"
            return shown, int(address[1])
    return host, port


def _run(coro: Coroutine[Any, Any, int]) -> int:
    """uvloop when installed (measurably faster pacing), else the stock asyncio loop."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return asyncio.run(coro)
    return int(uvloop.run(coro))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        host, port = parse_listen(args.listen or os.environ.get("KAR98K_LISTEN") or DEFAULT_LISTEN)
        token = read_token(args.token_file)
        name = pod_name(args.name)
        if args.drain_timeout < 0:
            raise CannotStart("--drain-timeout must be >= 0")
        return _run(serve(host, port, token, name, args.drain_timeout))
    except CannotStart as exc:
        log.error("cannot start: %s", exc)
        return EXIT_CANNOT_START


if __name__ == "__main__":
    sys.exit(main())
