"""Pytest fixtures (a plugin): the real demo target servers on 127.0.0.1, plus a test CA (trustme).

Registered from tests/conftest.py (`pytest_plugins`), so every test directory can use them:
http1_server, http1_tls_server, h2c_server, h2_tls_server, grpc_server, grpcs_server,
closed_port, tls_ca, ca_file and trust_test_ca; and `executors_closed_after`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import trustme
from kar98k.demo import DemoGrpcServer, DemoH2Server, DemoHttpServer
from kar98k_loadpod.targets import Target

LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(tls_ca: trustme.CA) -> trustme.LeafCert:
    return tls_ca.issue_cert(LOOPBACK, "localhost")


def server_ssl_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    """A server context presenting `cert` (ALPN is set by the server that uses it)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def ca_file(tls_ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "test-ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def trust_test_ca(monkeypatch: pytest.MonkeyPatch, ca_file: Path) -> Path:
    """Make executors built from now on trust the test CA (through SSL_CERT_FILE)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    return ca_file


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def http1_server() -> AsyncIterator[DemoHttpServer]:
    async with DemoHttpServer(LOOPBACK) as server:
        yield server


@pytest.fixture
async def http1_tls_server(server_cert: trustme.LeafCert) -> AsyncIterator[DemoHttpServer]:
    async with DemoHttpServer(LOOPBACK, ssl_context=server_ssl_context(server_cert)) as server:
        yield server


@pytest.fixture
async def h2c_server() -> AsyncIterator[DemoH2Server]:
    async with DemoH2Server(LOOPBACK) as server:
        yield server


@pytest.fixture
async def h2_tls_server(server_cert: trustme.LeafCert) -> AsyncIterator[DemoH2Server]:
    async with DemoH2Server(LOOPBACK, ssl_context=server_ssl_context(server_cert)) as server:
        yield server


@pytest.fixture
async def grpc_server() -> AsyncIterator[DemoGrpcServer]:
    async with DemoGrpcServer(LOOPBACK) as server:
        yield server


@pytest.fixture
async def grpcs_server(server_cert: trustme.LeafCert) -> AsyncIterator[DemoGrpcServer]:
    key = server_cert.private_key_pem.bytes()
    chain = b"".join(blob.bytes() for blob in server_cert.cert_chain_pems)
    async with DemoGrpcServer(LOOPBACK, tls=(key, chain)) as server:
        yield server


class _Closable(Protocol):
    async def close(self) -> None: ...


E = TypeVar("E", bound=_Closable)


@contextlib.asynccontextmanager
async def executors_closed_after(
    make: Callable[[Target, int], E], **defaults: Any
) -> AsyncIterator[Callable[..., E]]:
    """A builder `build(max_in_flight=8, **target_fields)`; every executor built is closed after."""
    made: list[E] = []

    def build(max_in_flight: int = 8, **fields: Any) -> E:
        executor = make(Target.model_validate({"name": "t", **defaults, **fields}), max_in_flight)
        made.append(executor)
        return executor

    try:
        yield build
    finally:
        for executor in made:
            await executor.close()
