"""The target model: exactly the shape of a LoadTest's `spec.targets[]` and of a plan's targets."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from .durations import Duration
from .model_base import WireModel

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
GRPC_METHOD = r"^/[A-Za-z_][A-Za-z0-9_.]*\.?[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*$"
HEALTH_METHOD = "/grpc.health.v1.Health/Check"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
_HEADER_VALUE_BAD = re.compile(r"[\r\n\x00]")

MAX_TARGETS = 256
"""Targets per plan and per LoadTest spec: each costs an executor and two latency histograms."""
MAX_HEADERS = 64
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 8192
MAX_MESSAGE_DEPTH = 32
MAX_MESSAGE_NODES = 10_000
MAX_WEIGHT = 1_000_000.0
MAX_TIMEOUT_S = 3600.0
MAX_PROBE_INTERVAL_S = 86400.0
RESERVED_ENV_PREFIX = "KAR98K_"
"""`${NAME}` never expands these: the pod's own settings and credentials (its control token)."""


def in_seconds_range(value: float, most: float) -> float:
    """A duration that must be > 0 and at most `most` seconds."""
    if value <= 0:
        raise ValueError(f"must be > 0, got {value:g}s")
    if value > most:
        raise ValueError(f"must be at most {most:g}s, got {value:g}s")
    return value


Timeout = Annotated[Duration, AfterValidator(lambda v: in_seconds_range(v, MAX_TIMEOUT_S))]
ProbeInterval = Annotated[
    Duration, AfterValidator(lambda v: in_seconds_range(v, MAX_PROBE_INTERVAL_S))
]


class Protocol(StrEnum):
    HTTP = "http"
    HTTP2 = "http2"
    GRPC = "grpc"


class GrpcCall(WireModel):
    """A unary gRPC call: full method name and a JSON message resolved through reflection."""

    method: str = Field(
        default=HEALTH_METHOD,
        pattern=GRPC_METHOD,
        description=(
            "Full method name '/package.Service/Method'; default the standard health check."
        ),
    )
    message: dict[str, Any] = Field(
        default_factory=dict,
        description="Request message as JSON (proto3 JSON mapping).",
    )

    @field_validator("message")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        depth, nodes = json_shape(value, max_depth=MAX_MESSAGE_DEPTH, max_nodes=MAX_MESSAGE_NODES)
        if depth > MAX_MESSAGE_DEPTH:
            raise ValueError(f"nested deeper than {MAX_MESSAGE_DEPTH} levels")
        if nodes > MAX_MESSAGE_NODES:
            raise ValueError(f"more than {MAX_MESSAGE_NODES} values")
        return value


class HealthCheck(WireModel):
    """Periodic per-target probe; an unhealthy target gets no traffic until it recovers."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!has(self.{name}) || (self.{name} != '0' "
                    f"&& duration(self.{name}) > duration('0s'))",
                    "fieldPath": f".{name}",
                    "reason": "FieldValueInvalid",
                    "message": "must be > 0",
                }
                for name in ("interval", "timeout")
            ]
        }
    )

    enabled: bool = Field(default=True, description="Probe this target periodically.")
    path: str = Field(
        default="/",
        pattern=r"^/",
        description="HTTP path to GET (healthy on 200-399); ignored for gRPC (health service).",
    )
    interval: ProbeInterval = Field(
        default=10.0, description="Time between probes, e.g. '10s' (> 0, at most 24h)."
    )
    timeout: Timeout = Field(default=2.0, description="Probe timeout, e.g. '2s' (> 0, at most 1h).")


class Target(WireModel):
    """One endpoint under load."""

    # Checked by the API server at `kubectl apply` (CEL); the validators below say the same.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.protocol) && self.protocol == 'grpc' "
                    "? self.url.matches('^grpcs?://') "
                    ": self.url.matches('^https?://')",
                    "fieldPath": ".url",
                    "reason": "FieldValueInvalid",
                    "message": "scheme must be http or https for protocol http and http2, "
                    "grpc or grpcs for protocol grpc",
                },
                {
                    "rule": "!has(self.grpc) || (has(self.protocol) && self.protocol == 'grpc')",
                    "fieldPath": ".grpc",
                    "reason": "FieldValueForbidden",
                    "message": "only allowed when protocol is grpc",
                },
                {
                    "rule": "!has(self.timeout) || (self.timeout != '0' "
                    "&& duration(self.timeout) > duration('0s'))",
                    "fieldPath": ".timeout",
                    "reason": "FieldValueInvalid",
                    "message": "must be > 0",
                },
            ]
        }
    )

    name: str = Field(
        pattern=DNS1123_LABEL,
        max_length=63,
        description="Unique DNS-1123 label naming this target in stats and metrics.",
    )
    protocol: Protocol = Field(default=Protocol.HTTP, description="http, http2 or grpc.")
    url: str = Field(
        min_length=1,
        max_length=2048,
        description=(
            "http(s)://host[:port]/path for http and http2; "
            "grpc://host:port (cleartext) or grpcs://host:port (TLS) for grpc."
        ),
    )
    method: str = Field(default="GET", max_length=16, description="HTTP method (ignored for grpc).")
    headers: dict[str, Annotated[str, Field(max_length=MAX_HEADER_VALUE)]] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description=(
            f"Request headers (gRPC: metadata), at most {MAX_HEADERS}; values without CR/LF. "
            f"'${{NAME}}' expands from the load pod's env (never {RESERVED_ENV_PREFIX}* names)."
        ),
    )
    body: str | None = Field(default=None, description="Request body (HTTP only).")
    weight: float = Field(
        default=1.0,
        ge=0,
        le=MAX_WEIGHT,
        strict=True,
        allow_inf_nan=False,
        description="Relative share of traffic (0..1000000); 0 disables the target.",
    )
    timeout: Timeout = Field(
        default=10.0, description="Per-request timeout, e.g. '5s' (> 0, at most 1h)."
    )
    tls_insecure_skip_verify: bool = Field(
        default=False, strict=True, description="Accept any server certificate (TLS only)."
    )
    grpc: GrpcCall | None = Field(
        default=None, description="gRPC call; default the standard health check."
    )
    health_check: HealthCheck | None = Field(
        default=None, description="Periodic health probe; absent means always healthy."
    )

    @field_validator("url")
    @classmethod
    def _url_matches_protocol(cls, url: str, info: ValidationInfo) -> str:
        # `protocol` is declared first, so it is known here whenever it is itself valid: a bad
        # URL is reported in the same pass as mistakes in the target's other fields.
        protocol = info.data.get("protocol")
        if protocol is None:
            return url
        check_url(url, protocol)
        return url

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        upper = value.upper()
        if upper not in HTTP_METHODS:
            raise ValueError(f"must be one of {', '.join(HTTP_METHODS)}, got {value!r}")
        return upper

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if len(name) > MAX_HEADER_NAME or not _HEADER_NAME.match(name):
                shown = name if len(name) <= 40 else name[:40] + "..."
                raise ValueError(f"header name {shown!r} is not a valid HTTP token")
            # The value itself may be a secret: never echo it, only say what is wrong.
            if _HEADER_VALUE_BAD.search(text):
                raise ValueError(f"header {name!r}: value must not contain CR, LF or NUL")
        return value

    @field_validator("grpc")
    @classmethod
    def _grpc_only_for_grpc(cls, value: GrpcCall | None, info: ValidationInfo) -> GrpcCall | None:
        protocol = info.data.get("protocol")
        if value is not None and protocol is not None and protocol is not Protocol.GRPC:
            raise ValueError("only allowed when protocol is grpc")
        return value

    @property
    def grpc_call(self) -> GrpcCall:
        return self.grpc or GrpcCall()

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme in ("https", "grpcs")

    @property
    def authority(self) -> str:
        """host:port, as gRPC and health checks address the target."""
        parts = urlsplit(self.url)
        default = 443 if self.uses_tls else 80
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{parts.port or default}"


def check_url(url: str, protocol: Protocol) -> None:
    """Raise ValueError unless `url` suits `protocol` (scheme, host, port)."""
    parts = urlsplit(url)
    allowed = ("grpc", "grpcs") if protocol is Protocol.GRPC else ("http", "https")
    shown = url if len(url) <= 100 else url[:100] + "..."
    if parts.scheme not in allowed:
        raise ValueError(
            f"scheme must be {' or '.join(allowed)} for protocol {protocol.value}, got {shown!r}"
        )
    if not parts.hostname:
        raise ValueError(f"must name a host, got {shown!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {shown!r}") from exc
    if protocol is Protocol.GRPC and port is None:
        raise ValueError(f"grpc targets need an explicit port, got {shown!r}")


def json_shape(value: object, *, max_depth: int, max_nodes: int) -> tuple[int, int]:
    """(depth, nodes) of a JSON-like value as it would be written out, shared sub-objects
    (YAML aliases) counted at every use. Iterative and memoized, so neither deep nesting nor
    an alias bomb costs more than the distinct objects; stops early past either limit."""
    memo: dict[int, tuple[int, int]] = {}
    stack: list[tuple[object, bool]] = [(value, False)]
    while stack:
        node, expanded = stack.pop()
        if not isinstance(node, dict | list) or id(node) in memo:
            continue
        children = list(node.values()) if isinstance(node, dict) else list(node)
        if not expanded:
            stack.append((node, True))
            stack.extend((c, False) for c in children if isinstance(c, dict | list))
            if len(stack) > max_nodes:
                return max_depth + 1, max_nodes + 1
            continue
        depth, nodes = 1, 1 + len(children)
        for child in children:
            sub_depth, sub_nodes = memo.get(id(child), (0, 0))
            depth = max(depth, 1 + sub_depth)
            nodes += sub_nodes
        memo[id(node)] = (depth, nodes)
        if depth > max_depth or nodes > max_nodes:
            return depth, nodes
    return memo.get(id(value), (0, 1))


def expandable(name: str) -> bool:
    """May '${name}' be expanded? Never for the pod's own KAR98K_* settings and credentials."""
    return not name.upper().startswith(RESERVED_ENV_PREFIX)


def expand_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand '${NAME}' from the pod's environment: secrets live there, never in specs or plans.

    Names under KAR98K_ (the pod's control token among them) expand to nothing, so a plan can
    never make the pod send its own credentials to a target.
    """
    env = os.environ if environ is None else environ
    return _ENV_REF.sub(lambda m: env.get(m.group(1), "") if expandable(m.group(1)) else "", value)


def expand_header(name: str, value: str, environ: Mapping[str, str] | None = None) -> str:
    """A header value with '${NAME}' expanded; ValueError (never quoting the value, which may be
    a secret) when the result holds CR, LF or NUL and would split the request head."""
    expanded = expand_env(value, environ)
    if _HEADER_VALUE_BAD.search(expanded):
        raise ValueError(f"header {name!r}: expanded value contains CR, LF or NUL")
    return expanded


def unique_names(targets: list[Target]) -> list[str]:
    """Names that occur more than once (empty when all are unique)."""
    seen: set[str] = set()
    dupes: list[str] = []
    for target in targets:
        if target.name in seen and target.name not in dupes:
            dupes.append(target.name)
        seen.add(target.name)
    return dupes
