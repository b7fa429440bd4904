"""A loopback plaintext-to-TLS relay for grpcs targets with tlsInsecureSkipVerify.

grpcio's Python API cannot switch off certificate verification, and trusting a certificate
fetched from the server breaks on CA-issued leaves and host names. So the executor points an
insecure channel at this relay on 127.0.0.1, and the relay opens each upstream connection
with TLS (ALPN h2) that accepts any certificate. The :authority still names the target.
It costs a copy per byte, which is fine for an opt-in insecure mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress

from . import tls

_CHUNK = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


class InsecureTlsBridge:
    """Listens on 127.0.0.1:<ephemeral>; every accepted connection is relayed over TLS."""

    def __init__(self, host: str, port: int, *, handshake_timeout: float) -> None:
        self._host = host
        self._port = port
        self._timeout = handshake_timeout
        self._context = tls.client_context(verify=False, alpn=["h2"])
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def _sni(self) -> str | None:
        try:
            ipaddress.ip_address(self._host)
        except ValueError:
            return self._host
        return None  # no SNI for IP literals

    async def start(self) -> int:
        """Bind and return the local port the gRPC channel should dial."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self._host,
                    self._port,
                    ssl=self._context,
                    server_hostname=self._sni or "",
                    ssl_handshake_timeout=self._timeout,
                ),
                self._timeout,
            )
        except (OSError, TimeoutError):
            writer.close()  # the channel sees the drop and reports UNAVAILABLE
            return
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
