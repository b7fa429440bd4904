"""Resolve a unary method's request type through server reflection and encode a JSON message.

Done once per executor (the load path then reuses the encoded bytes). The reflection
protocol's v1 and v1alpha services share one wire format, so the v1alpha message classes
shipped with grpcio-reflection serve both; v1 is tried first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2

REFLECTION_PATHS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)

Metadata = tuple[tuple[str, str | bytes], ...]


class ResolveError(Exception):
    """The method cannot be called as configured (not found, streaming, bad message).

    Transport failures are not wrapped: they surface as `grpc.aio.AioRpcError`.
    """


def split_method(method: str) -> tuple[str, str]:
    """'/pkg.Service/Method' -> ('pkg.Service', 'Method')."""
    service, _, name = method.lstrip("/").partition("/")
    if not service or not name:
        raise ResolveError(f"bad method name {method!r}; expected '/package.Service/Method'")
    return service, name


async def _ask(
    channel: grpc.aio.Channel,
    path: str,
    request: reflection_pb2.ServerReflectionRequest,
    metadata: Metadata,
) -> list[bytes]:
    """One reflection request; returns serialized FileDescriptorProtos."""
    stream = channel.stream_stream(
        path,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    call = stream(iter((request,)), metadata=metadata or None)
    files: list[bytes] = []
    async for response in call:
        if response.HasField("error_response"):
            err = response.error_response
            raise ResolveError(f"reflection error {err.error_code}: {err.error_message}")
        files.extend(bytes(f) for f in response.file_descriptor_response.file_descriptor_proto)
    return files


class _Reflector:
    """Fetches files (and their missing dependencies) over whichever reflection version works."""

    def __init__(self, channel: grpc.aio.Channel, metadata: Metadata) -> None:
        self._channel = channel
        self._metadata = metadata
        self._paths: Sequence[str] = REFLECTION_PATHS

    async def ask(self, request: reflection_pb2.ServerReflectionRequest) -> list[bytes]:
        for index, path in enumerate(self._paths):
            try:
                files = await _ask(self._channel, path, request, self._metadata)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED and index + 1 < len(self._paths):
                    continue
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    raise ResolveError("the server does not offer gRPC server reflection") from exc
                raise
            self._paths = (path,)  # remember the version that answered
            return files
        raise ResolveError("the server does not offer gRPC server reflection")


async def _load_files(reflector: _Reflector, service: str) -> descriptor_pool.DescriptorPool:
    """A fresh pool holding the file that defines `service` and all its imports."""
    protos: dict[str, Any] = {}
    raw: dict[str, bytes] = {}

    def take(blobs: list[bytes]) -> None:
        for blob in blobs:
            proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
            protos.setdefault(proto.name, proto)
            raw.setdefault(proto.name, blob)

    take(
        await reflector.ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=service))
    )
    if not protos:
        raise ResolveError(f"reflection returned no file for service {service!r}")
    missing = [d for p in list(protos.values()) for d in p.dependency if d not in protos]
    while missing:
        name = missing.pop()
        if name in protos:
            continue
        with contextlib.suppress(ResolveError):
            take(await reflector.ask(reflection_pb2.ServerReflectionRequest(file_by_filename=name)))
        if name not in protos:  # e.g. well-known types some servers leave out
            try:
                known = descriptor_pool.Default().FindFileByName(name)
            except KeyError as exc:
                raise ResolveError(f"reflection cannot supply {name!r}") from exc
            proto = descriptor_pb2.FileDescriptorProto()
            known.CopyToProto(proto)
            protos[name] = proto
            raw[name] = proto.SerializeToString()
        missing.extend(d for d in protos[name].dependency if d not in protos)

    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        added.add(name)
        for dep in protos[name].dependency:
            add(dep)
        pool.AddSerializedFile(raw[name])

    for name in protos:
        add(name)
    return pool


def encode_message(message_type: Any, message: Mapping[str, Any]) -> bytes:
    """Proto3-JSON dict -> serialized bytes of `message_type` (a message Descriptor)."""
    cls = message_factory.GetMessageClass(message_type)
    try:
        msg = json_format.ParseDict(dict(message), cls())
    except json_format.ParseError as exc:
        raise ResolveError(f"message does not fit {message_type.full_name}: {exc}") from exc
    data: bytes = msg.SerializeToString()
    return data


async def resolve_request(
    channel: grpc.aio.Channel,
    method: str,
    message: Mapping[str, Any],
    *,
    metadata: Metadata = (),
    timeout: float,  # noqa: ASYNC109 - bounds the whole multi-call resolution
) -> bytes:
    """The serialized request for `method` built from `message`, via server reflection.

    Raises ResolveError when the call cannot be built, `grpc.aio.AioRpcError` for transport
    failures and TimeoutError when the whole resolution exceeds `timeout`.
    """
    service_name, method_name = split_method(method)
    async with asyncio.timeout(timeout):
        pool = await _load_files(_Reflector(channel, metadata), service_name)
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError as exc:
        raise ResolveError(f"service {service_name!r} not found by reflection") from exc
    found = service.methods_by_name.get(method_name)
    if found is None:
        raise ResolveError(f"method {method_name!r} not found in {service_name!r}")
    if found.client_streaming or found.server_streaming:
        raise ResolveError(f"{method} is a streaming method; only unary methods are supported")
    return encode_message(found.input_type, message)
