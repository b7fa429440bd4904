"""gRPC unary executor: cached grpc.aio channels, one pre-serialized request, status by code.

Requests and responses travel as raw bytes (no per-call (de)serialization): the request is
encoded once, from the health-check type or through server reflection, and responses are
only judged by their status. Status OK is success; every other code is recorded by name.

`push` is the pacer's task-free path: the call is started at once and its end reported
through grpc.aio's done callback, so a send costs grpc.aio's own task and no second one of
ours. The callback learns OK from the call object's cython core (`is_ok`, synchronous);
anything else, or a grpcio without it, is read through the public `code()` in a small task
(errors are rare at the rates where the saving matters). See docs/decisions.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2

from ..targets import HEALTH_METHOD, Target, expand_header
from . import tls
from .grpc_reflection import Metadata, ResolveError, encode_message, resolve_request
from .outcome import ERROR, GRPC_OK, grpc_outcome
from .tls_bridge import InsecureTlsBridge

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
# One HTTP/2 connection carries ~100 concurrent streams by default; beyond that, more channels.
_STREAMS_PER_CHANNEL = 100
_MAX_CHANNELS = 8
# After a definitive resolution failure, try again this much later (the server may be fixed).
RESOLVE_RETRY_SECONDS = 10.0
_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.use_local_subchannel_pool", 1),  # each channel its own connection
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),  # notice a recovered server within ~1 s
)


def _metadata(target: Target) -> Metadata:
    pairs: list[tuple[str, str | bytes]] = []
    for key, value in target.headers.items():
        name = key.lower()
        expanded = expand_header(key, value)
        pairs.append((name, expanded.encode() if name.endswith("-bin") else expanded))
    return tuple(pairs)


class GrpcExecutor:
    """Calls one unary method (default the standard health check) on one target."""

    def __init__(self, target: Target, max_in_flight: int) -> None:
        self._target = target
        call = target.grpc_call
        self._method = call.method
        self._message = call.message
        self._metadata: Metadata | None = _metadata(target) or None
        self._timeout = target.timeout
        check = target.health_check
        self._probe_timeout = check.timeout if check else 2.0
        self._channel_count = min(
            _MAX_CHANNELS, max(1, math.ceil(max_in_flight / _STREAMS_PER_CHANNEL))
        )
        self._channels: list[Any] = []
        self._calls: list[Any] = []
        self._next = 0
        self._probe_call: Any = None
        self._bridge: InsecureTlsBridge | None = None
        self._opening: asyncio.Lock | None = None
        self._payload: bytes | None = None
        self._failed_until = 0.0
        self._logged: set[str] = set()
        self._resolving: asyncio.Task[bytes | str] | None = None
        self._pending: set[asyncio.Task[None]] = set()  # pushed calls' outcome lookups
        # The health service is known locally: no reflection needed for it.
        probe_service = ""
        if self._method == HEALTH_METHOD:
            try:
                self._payload = encode_message(
                    health_pb2.HealthCheckRequest.DESCRIPTOR, self._message
                )
                probe_service = str(self._message.get("service", ""))
            except ResolveError as exc:
                self._fail(str(exc))
        self._probe_request = health_pb2.HealthCheckRequest(service=probe_service)

    # -- channels -------------------------------------------------------------------------

    async def _open(self) -> list[Any]:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._calls:
                return self._calls
            target = self._target
            address = target.authority
            options = list(_CHANNEL_OPTIONS)
            if target.uses_tls and target.tls_insecure_skip_verify:
                parts = urlsplit(target.url)
                self._bridge = InsecureTlsBridge(
                    parts.hostname or "", parts.port or 443, handshake_timeout=target.timeout
                )
                address = f"127.0.0.1:{await self._bridge.start()}"
                options.append(("grpc.default_authority", target.authority))
            for _ in range(self._channel_count):
                if target.uses_tls and not target.tls_insecure_skip_verify:
                    credentials = grpc.ssl_channel_credentials(tls.grpc_root_certificates())
                    channel = grpc.aio.secure_channel(address, credentials, options=options)
                else:
                    channel = grpc.aio.insecure_channel(address, options=options)
                self._channels.append(channel)
            # Identity (de)serializers: bytes in, bytes out.
            self._calls = [ch.unary_unary(self._method) for ch in self._channels]
            self._probe_call = self._channels[0].unary_unary(
                HEALTH_METHOD,
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            return self._calls

    # -- request resolution ---------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self._failed_until = time.monotonic() + RESOLVE_RETRY_SECONDS
        if reason not in self._logged:
            self._logged.add(reason)
            log.warning("target %s: cannot call %s: %s", self._target.name, self._method, reason)

    async def _resolve(self) -> bytes | str:
        """Encoded request bytes, or the outcome to record when they cannot be had now."""
        try:
            payload = await resolve_request(
                self._channels[0],
                self._method,
                self._message,
                metadata=self._metadata or (),
                timeout=self._timeout,
            )
        except ResolveError as exc:
            self._fail(str(exc))
            return ERROR
        except grpc.aio.AioRpcError as exc:
            return grpc_outcome(exc.code())  # e.g. UNAVAILABLE: retried on the next send
        except TimeoutError:
            return grpc_outcome(grpc.StatusCode.DEADLINE_EXCEEDED)
        except Exception as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
            return ERROR
        self._payload = payload
        return payload

    async def _request_bytes(self) -> bytes | str:
        if self._failed_until > time.monotonic():
            return ERROR
        task = self._resolving
        if task is None:
            task = self._resolving = asyncio.get_running_loop().create_task(self._resolve())
            task.add_done_callback(self._resolved)
        # Shielded: a cancelled send must not cancel the resolution others wait for.
        return await asyncio.shield(task)

    def _resolved(self, task: asyncio.Task[bytes | str]) -> None:
        if self._resolving is task:
            self._resolving = None

    async def request_message(self) -> bytes | str:
        """The serialized request, resolved once (opening a channel for reflection when
        needed), or the outcome to record while it cannot be had; for clients that frame
        the calls themselves (grpc_h2.py)."""
        if self._payload is not None:
            return self._payload
        try:
            if not self._calls:
                await self._open()
        except Exception as exc:
            self._fail(f"cannot open a channel: {exc}")
            return ERROR
        return await self._request_bytes()

    # -- Executor -------------------------------------------------------------------------

    async def send(self) -> str:
        try:
            calls = self._calls or await self._open()
        except Exception as exc:
            self._fail(f"cannot open a channel: {exc}")
            return ERROR
        payload = self._payload
        if payload is None:
            got = await self._request_bytes()
            if isinstance(got, str):
                return got
            payload = got
        index = self._next
        self._next = index + 1 if index + 1 < len(calls) else 0
        try:
            await calls[index](payload, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            return grpc_outcome(exc.code())
        except Exception:  # CancelledError is a BaseException and passes through
            return ERROR
        return GRPC_OK

    def push(self, done: Callable[[Any, str], None], token: Any) -> bool:
        """Start one call now, answered by `done(token, outcome)` (never before this returns);
        False, with nothing started, until channels are open and the request is known."""
        calls = self._calls
        payload = self._payload
        if not calls or payload is None:
            return False
        index = self._next
        self._next = index + 1 if index + 1 < len(calls) else 0
        try:
            call = calls[index](payload, timeout=self._timeout, metadata=self._metadata)
        except Exception:
            return False  # the task path will try, and record what it gets
        call.add_done_callback(partial(self._called, done, token))
        return True

    def _called(self, done: Callable[[Any, str], None], token: Any, call: Any) -> None:
        try:
            ok = bool(call._cython_call.is_ok())
        except Exception:  # a grpcio without it: ask the public API
            ok = False
        if ok:
            done(token, GRPC_OK)
            return
        task = asyncio.get_running_loop().create_task(self._outcome(call, done, token))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _outcome(call: Any, done: Callable[[Any, str], None], token: Any) -> None:
        try:
            outcome = grpc_outcome(await call.code())
        except Exception:
            outcome = ERROR
        done(token, outcome)

    async def probe(self) -> bool:
        """grpc.health.v1 Check on the target's service ('' = the whole server)."""
        try:
            if not self._calls:
                await self._open()
            response = await self._probe_call(
                self._probe_request, timeout=self._probe_timeout, metadata=self._metadata
            )
        except Exception:
            return False
        return bool(response.status == SERVING)

    async def close(self) -> None:
        task = self._resolving
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        self._calls = []
        if self._bridge is not None:
            await self._bridge.close()
            self._bridge = None
