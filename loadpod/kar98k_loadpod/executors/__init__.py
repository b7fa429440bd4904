"""Executors: one per target, reused for all its requests; they turn a send into an outcome key.

Outcome keys (see `stats.py`): "1xx".."5xx", "timeout", "connect_error", "error" and
"grpc_<CODE>". `send` never raises except `asyncio.CancelledError`.
"""

from __future__ import annotations

import os
from typing import Protocol as _Protocol

from ..targets import Protocol, Target
from .grpc_h2 import GrpcH2Executor
from .grpc_unary import GrpcExecutor
from .http1 import Http1Executor
from .http1_fast import FastHttp1Executor
from .http1_pipeline import PipelinedHttp1Executor, pipeline_depth
from .http2 import Http2Executor
from .http2_fast import FastHttp2Executor

__all__ = [
    "Executor",
    "FastHttp1Executor",
    "FastHttp2Executor",
    "GrpcExecutor",
    "GrpcH2Executor",
    "Http1Executor",
    "Http2Executor",
    "make_executor",
]

HTTP1_CLIENT_ENV = "KAR98K_HTTP1_CLIENT"
"""`fast` (default: httptools + asyncio Protocols, see http1_fast.py) or `aiohttp`."""
HTTP2_CLIENT_ENV = "KAR98K_HTTP2_CLIENT"
"""`fast` (default: h2 + asyncio Protocols, see http2_fast.py) or `httpx`."""
HTTP2_CLIENT_DEFAULT = "fast"
GRPC_CLIENT_ENV = "KAR98K_GRPC_CLIENT"
"""`grpcio` (default: grpc.aio channels, see grpc_unary.py) or `h2` (hand-framed, grpc_h2.py)."""


class Executor(_Protocol):
    async def send(self) -> str:
        """One request to the target; returns its outcome key."""
        ...

    async def probe(self) -> bool:
        """One health check: HTTP GET on the health path (200-399) or gRPC SERVING."""
        ...

    async def close(self) -> None:
        """Release connections and channels."""
        ...


def make_executor(target: Target, max_in_flight: int) -> Executor:
    """The executor for `target`; '${NAME}' in header values expands from os.environ now."""
    if target.protocol is Protocol.GRPC:
        if os.environ.get(GRPC_CLIENT_ENV, "grpcio").strip().lower() == "h2":
            return GrpcH2Executor(target, max_in_flight)
        return GrpcExecutor(target, max_in_flight)
    if target.protocol is Protocol.HTTP2:
        choice = os.environ.get(HTTP2_CLIENT_ENV, HTTP2_CLIENT_DEFAULT).strip().lower()
        if choice == "httpx":
            return Http2Executor(target, max_in_flight)
        return FastHttp2Executor(target, max_in_flight)
    if os.environ.get(HTTP1_CLIENT_ENV, "fast").strip().lower() == "aiohttp":
        return Http1Executor(target, max_in_flight)
    depth = pipeline_depth(target)  # opt-in: KAR98K_HTTP1_PIPELINE
    if depth > 1:
        return PipelinedHttp1Executor(target, max_in_flight, depth)
    return FastHttp1Executor(target, max_in_flight)
