"""Turn responses and failures into the outcome keys of `stats.py`, cheaply and consistently."""

from __future__ import annotations

import asyncio
import logging
import ssl

import aiohttp
import grpc
import httpx

TIMEOUT = "timeout"
CONNECT_ERROR = "connect_error"
ERROR = "error"

log = logging.getLogger(__name__)

# Precomputed so the hot path only indexes a tuple: no string formatting per request.
_STATUS_CLASSES: tuple[str, ...] = ("error", "1xx", "2xx", "3xx", "4xx", "5xx")
_GRPC_KEYS: dict[grpc.StatusCode, str] = {code: f"grpc_{code.name}" for code in grpc.StatusCode}
GRPC_OK = _GRPC_KEYS[grpc.StatusCode.OK]


def http_outcome(status: int) -> str:
    """'1xx'..'5xx' for a status code; anything outside 100-599 is a protocol 'error'."""
    klass = status // 100
    if 1 <= klass <= 5:
        return _STATUS_CLASSES[klass]
    return ERROR


def grpc_outcome(code: grpc.StatusCode | None) -> str:
    """'grpc_<NAME>' for every status code, OK included (OK is success, never an error)."""
    if code is None:
        return ERROR
    return _GRPC_KEYS.get(code, ERROR)


def exception_outcome(exc: BaseException) -> str:
    """Classify a transport failure of either HTTP client.

    TLS handshake and certificate failures count as 'connect_error': the connection could
    not be established, exactly like a refused port or an unknown host.
    """
    if isinstance(exc, httpx.TimeoutException | TimeoutError | asyncio.TimeoutError):
        return TIMEOUT
    if isinstance(
        exc,
        httpx.ConnectError
        | aiohttp.ClientConnectorError
        | ConnectionRefusedError
        | ssl.SSLError
        | ssl.CertificateError,
    ):
        return CONNECT_ERROR
    return ERROR
