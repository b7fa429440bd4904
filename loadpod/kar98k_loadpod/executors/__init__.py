"""Executors: one per target, reused for all its requests; they turn a send into an outcome key.

Outcome keys (see `stats.py`): "1xx".."5xx", "timeout", "connect_error", "error" and
"grpc_<CODE>". `send` never raises except `asyncio.CancelledError`.
"""

from __future__ import annotations

from typing import Protocol as _Protocol

from ..targets import Protocol, Target
from .grpc_unary import GrpcExecutor
from .http1 import Http1Executor
from .http2 import Http2Executor

__all__ = ["Executor", "GrpcExecutor", "Http1Executor", "Http2Executor", "make_executor"]


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
        return GrpcExecutor(target, max_in_flight)
    if target.protocol is Protocol.HTTP2:
        return Http2Executor(target, max_in_flight)
    return Http1Executor(target, max_in_flight)
