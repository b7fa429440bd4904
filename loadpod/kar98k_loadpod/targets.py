"""The target model: exactly the shape of a LoadTest's `spec.targets[]` and of a plan's targets."""

from __future__ import annotations

import os
import re
from enum import StrEnum
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from .durations import Duration
from .model_base import WireModel

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
GRPC_METHOD = r"^/[A-Za-z_][A-Za-z0-9_.]*\.?[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*$"
HEALTH_METHOD = "/grpc.health.v1.Health/Check"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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
    interval: Duration = Field(default=10.0, description="Time between probes, e.g. '10s'.")
    timeout: Duration = Field(default=2.0, description="Probe timeout, e.g. '2s'.")

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if self.interval <= 0:
            raise ValueError("interval: must be > 0")
        if self.timeout <= 0:
            raise ValueError("timeout: must be > 0")
        return self


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
    url: str = Field(
        min_length=1,
        max_length=2048,
        description=(
            "http(s)://host[:port]/path for http and http2; "
            "grpc://host:port (cleartext) or grpcs://host:port (TLS) for grpc."
        ),
    )
    protocol: Protocol = Field(default=Protocol.HTTP, description="http, http2 or grpc.")
    method: str = Field(default="GET", description="HTTP method (ignored for grpc).")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers (gRPC: metadata). '${NAME}' expands from the load pod's env.",
    )
    body: str | None = Field(default=None, description="Request body (HTTP only).")
    weight: float = Field(
        default=1.0, ge=0, description="Relative share of traffic; 0 disables the target."
    )
    timeout: Duration = Field(default=10.0, description="Per-request timeout, e.g. '5s'.")
    tls_insecure_skip_verify: bool = Field(
        default=False, description="Accept any server certificate (TLS only)."
    )
    grpc: GrpcCall | None = Field(
        default=None, description="gRPC call; default the standard health check."
    )
    health_check: HealthCheck | None = Field(
        default=None, description="Periodic health probe; absent means always healthy."
    )

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        upper = value.upper()
        if upper not in HTTP_METHODS:
            raise ValueError(f"must be one of {', '.join(HTTP_METHODS)}, got {value!r}")
        return upper

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be > 0, got {value:g}s")
        return value

    @model_validator(mode="after")
    def _url_matches_protocol(self) -> Self:
        parts = urlsplit(self.url)
        if self.protocol is Protocol.GRPC:
            allowed: tuple[str, ...] = ("grpc", "grpcs")
        else:
            allowed = ("http", "https")
        if parts.scheme not in allowed:
            raise ValueError(
                f"url: scheme must be {' or '.join(allowed)} for protocol "
                f"{self.protocol.value}, got {self.url!r}"
            )
        if not parts.hostname:
            raise ValueError(f"url: must name a host, got {self.url!r}")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"url: bad port in {self.url!r}") from exc
        if self.protocol is Protocol.GRPC and parts.port is None:
            raise ValueError(f"url: grpc targets need an explicit port, got {self.url!r}")
        if self.grpc is not None and self.protocol is not Protocol.GRPC:
            raise ValueError("grpc: only allowed when protocol is grpc")
        return self

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


def expand_env(value: str, environ: dict[str, str] | None = None) -> str:
    """Expand '${NAME}' from the pod's environment: secrets live there, never in specs or plans."""
    env = os.environ if environ is None else environ
    return _ENV_REF.sub(lambda m: env.get(m.group(1), ""), value)


def unique_names(targets: list[Target]) -> list[str]:
    """Names that occur more than once (empty when all are unique)."""
    seen: set[str] = set()
    dupes: list[str] = []
    for target in targets:
        if target.name in seen and target.name not in dupes:
            dupes.append(target.name)
        seen.add(target.name)
    return dupes
