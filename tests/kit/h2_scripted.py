"""A scripted HTTP/2 server on 127.0.0.1 (the `h2` library, server side) for executor tests.

The demo servers behave well; this one misbehaves on request, in the ways a real server
may: tiny flow-control windows, few concurrent streams, GOAWAY with streams still open,
RST_STREAM, PING, padded DATA, header blocks spread over CONTINUATION frames, and answer
statuses outside HPACK's static table (so its dynamic table keeps changing). Since `h2`
enforces the protocol on what it receives, a client that overruns a window or a stream
limit makes the server fail the connection, and the test sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hyperframe.frame

LOOPBACK = "127.0.0.1"


@dataclass
class Script:
    """How the server behaves; the defaults are a plain, well-behaved h2c server."""

    initial_window: int = 65_535  # SETTINGS_INITIAL_WINDOW_SIZE it announces
    max_streams: int = 100  # SETTINGS_MAX_CONCURRENT_STREAMS
    window_step: int = 0  # > 0: give flow-control credit back this many bytes at a time
    goaway_after: int = 0  # > 0: once this many requests wait (unanswered), GOAWAY (see _goaway)
    refuse_first: int = 0  # RST_STREAM REFUSED_STREAM on the first N streams
    reset_code: int | None = None  # RST_STREAM every stream with this code instead of answering
    statuses: list[int] = field(default_factory=list)  # answer statuses in turn (default 200)
    big_header: int = 0  # > 0: a response header this long (CONTINUATION frames)
    padding: int = 0  # > 0: pad the response DATA
    ping: bool = False  # PING the client before every answer
    extra: list[tuple[bytes, bytes]] = field(default_factory=list)  # more response headers
    trailers: list[tuple[bytes, bytes]] | None = None  # set: DATA `body`, then these trailers
    body: bytes = b"ok"  # the DATA sent before trailers


@dataclass
class Seen:
    """What the server observed."""

    completed: int = 0  # streams answered
    bodies: list[int] = field(default_factory=list)  # body bytes per answered stream
    connections: int = 0
    max_open: int = 0  # most streams open at once on one connection
    pings_acked: int = 0
    dropped: int = 0  # streams left unanswered above a GOAWAY's last stream id
    errors: list[str] = field(default_factory=list)  # protocol errors h2 raised on our input


class _ServerConn(asyncio.Protocol):
    def __init__(self, server: ScriptedH2Server) -> None:
        self.server = server
        self.script = server.script
        self.seen = server.seen
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.transport: asyncio.Transport | None = None
        self.bodies: dict[int, int] = {}
        self.opened = 0
        self.ready: list[int] = []  # requests complete, not yet answered (GOAWAY script)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.seen.connections += 1
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.script.initial_window,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.script.max_streams,
            },
        )
        self.conn.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.seen.errors.append(repr(exc))
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            self._event(event)
        self._flush()

    def _event(self, event: h2.events.Event) -> None:
        script = self.script
        if isinstance(event, h2.events.RequestReceived):
            sid = event.stream_id
            self.opened += 1
            self.bodies[sid] = 0
            self.seen.max_open = max(self.seen.max_open, len(self.bodies))
            if self.server.refused < script.refuse_first:
                self.server.refused += 1
                self._reset(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            elif script.reset_code is not None:
                self._reset(sid, script.reset_code)
        elif isinstance(event, h2.events.DataReceived):
            sid = event.stream_id
            if sid in self.bodies:
                self.bodies[sid] += len(event.data)
            self._credit(event.flow_controlled_length, sid)
        elif isinstance(event, h2.events.StreamEnded):
            if event.stream_id not in self.bodies:
                return
            self.ready.append(event.stream_id)
            if not script.goaway_after or self.server.gone:
                self._answer(self.ready.pop())
            elif len(self.ready) >= script.goaway_after:
                self._goaway()
        elif isinstance(event, h2.events.PingAckReceived):
            self.seen.pings_acked += 1

    def _goaway(self) -> None:
        """GOAWAY first, keeping the older half of the waiting streams, answered after it;
        the newer half was never processed, and the client must retry exactly those."""
        self.server.gone = True
        kept = sorted(self.ready)[: max(1, len(self.ready) // 2)]
        last = kept[-1]
        self._flush()
        if self.transport is not None:
            frame = hyperframe.frame.GoAwayFrame(0)
            frame.last_stream_id = last
            self.transport.write(frame.serialize())
        for sid in kept:
            self._answer(sid)
        self.seen.dropped += len(self.ready) - len(kept)
        self.ready.clear()
        self._flush()

    def _credit(self, length: int, stream_id: int) -> None:
        if length <= 0:
            return
        step = self.script.window_step
        if not step:
            self.conn.acknowledge_received_data(length, stream_id)
            return
        # Give the credit back in small pieces, later: the client must wait for each one.
        loop = asyncio.get_running_loop()
        for start in range(0, length, step):
            loop.call_later(0.001, self._late_credit, min(step, length - start), stream_id)

    def _late_credit(self, length: int, stream_id: int) -> None:
        try:
            self.conn.acknowledge_received_data(length, stream_id)
        except (h2.exceptions.StreamClosedError, KeyError):
            self.conn.increment_flow_control_window(length)
        self._flush()

    def _reset(self, stream_id: int, code: int) -> None:
        del self.bodies[stream_id]
        self.conn.reset_stream(stream_id, code)

    def _answer(self, stream_id: int) -> None:
        script = self.script
        if stream_id not in self.bodies:
            return
        body_len = self.bodies.pop(stream_id)
        self.seen.bodies.append(body_len)
        statuses = script.statuses or [200]
        status = statuses[self.seen.completed % len(statuses)]
        self.seen.completed += 1
        if script.ping:
            self.conn.ping(b"12345678")
        headers = [(b":status", str(status).encode())]
        if script.big_header:
            headers.append((b"x-big", b"b" * script.big_header))
        headers += script.extra
        if script.trailers is not None:  # gRPC's shape: headers, DATA, trailers
            self.conn.send_headers(stream_id, headers)
            self.conn.send_data(stream_id, script.body)
            self.conn.send_headers(stream_id, script.trailers, end_stream=True)
        elif script.padding:
            self.conn.send_headers(stream_id, headers)
            self.conn.send_data(stream_id, b"ok", end_stream=True, pad_length=script.padding)
        else:
            self.conn.send_headers(stream_id, headers, end_stream=True)

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)


class ScriptedH2Server:
    """`async with ScriptedH2Server(Script(...)) as s:` → s.url, s.seen."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.seen = Seen()
        self.refused = 0
        self.gone = False  # the GOAWAY script ran (once per server)
        self.conns: set[_ServerConn] = set()
        self._server: asyncio.AbstractServer | None = None
        self.url = ""

    def _make(self) -> _ServerConn:
        conn = _ServerConn(self)
        self.conns.add(conn)
        return conn

    async def __aenter__(self) -> ScriptedH2Server:
        factory: Callable[[], asyncio.Protocol] = self._make
        self._server = await asyncio.get_running_loop().create_server(factory, LOOPBACK, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{LOOPBACK}:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.abort()
        await self._server.wait_closed()
