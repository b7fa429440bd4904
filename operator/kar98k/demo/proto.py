"""The demo gRPC service, defined in code (no protoc): kar98k.demo.Echo/Say.

    message SayRequest { string text = 1; int32 delay_ms = 2; int32 fail_code = 3; }
    message SayReply   { string text = 1; }
    service Echo       { rpc Say(SayRequest) returns (SayReply); }

The file lives in its own DescriptorPool (never the process-wide default one), together with
copies of the health and reflection protos, so server reflection can describe every service
the demo server offers.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

FILE_NAME = "kar98k/demo/echo.proto"
PACKAGE = "kar98k.demo"
SERVICE = f"{PACKAGE}.Echo"
SAY_METHOD = f"/{SERVICE}/Say"

_T = descriptor_pb2.FieldDescriptorProto


def _field(name: str, number: int, kind: int, json_name: str) -> Any:
    return _T(name=name, number=number, type=kind, label=_T.LABEL_OPTIONAL, json_name=json_name)


def file_descriptor() -> Any:
    """The FileDescriptorProto of echo.proto."""
    proto = descriptor_pb2.FileDescriptorProto(name=FILE_NAME, package=PACKAGE, syntax="proto3")
    proto.message_type.add(
        name="SayRequest",
        field=[
            _field("text", 1, _T.TYPE_STRING, "text"),
            _field("delay_ms", 2, _T.TYPE_INT32, "delayMs"),
            _field("fail_code", 3, _T.TYPE_INT32, "failCode"),
        ],
    )
    proto.message_type.add(name="SayReply", field=[_field("text", 1, _T.TYPE_STRING, "text")])
    service = proto.service.add(name="Echo")
    service.method.add(
        name="Say", input_type=f".{PACKAGE}.SayRequest", output_type=f".{PACKAGE}.SayReply"
    )
    return proto


def _build_pool() -> Any:
    pool = descriptor_pool.DescriptorPool()
    for module in (health_pb2, reflection_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(file_descriptor().SerializeToString())
    return pool


POOL = _build_pool()


def _message_class(name: str) -> Any:
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


SayRequest: Any = _message_class("SayRequest")
SayReply: Any = _message_class("SayReply")
