"""Control API (aiohttp): plan in, stats out, drain, probes and /metrics.

HTTP only; every decision is `PodRuntime`'s. Errors are JSON {"error", "details"} and
bad input never crashes the handler.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from .metrics import CONTENT_TYPE_LATEST, render
from .model_base import WireModel
from .plan import MAX_PLAN_BYTES, Plan
from .protocol import API_PREFIX, DRAIN_PATH, PLAN_PATH, STATS_PATH, DrainRequest, PlanAck
from .runtime import Draining, PlanRejected, PodRuntime, StaleEpoch

log = logging.getLogger(__name__)
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): (.*)$", re.DOTALL)

RUNTIME_KEY = web.AppKey("runtime", PodRuntime)
TOKEN_KEY = web.AppKey("token", bytes)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=WireModel)


def error(
    status: int, message: str, details: list[str] | None = None, **extra: Any
) -> web.Response:
    body: dict[str, Any] = {"error": message, "details": details or []}
    body.update(extra)
    return web.json_response(body, status=status)


def validation_details(exc: ValidationError) -> list[str]:
    """Pydantic errors as 'targets[0].url: message' lines (wire names, camelCase)."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        path = ""
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{part}" if path else str(part)
        msg = str(err["msg"]).removeprefix("Value error, ")
        # Model-level checks say "url: ..."; fold that field into the path: "targets[0].url: ...".
        field = _FIELD_PREFIX.match(msg)
        if field and path:
            path, msg = f"{path}.{field.group(1)}", field.group(2)
        lines.append(f"{path}: {msg}" if path else msg)
    return lines


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HTTP errors become JSON; anything unexpected is a logged 500, never a crash."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(exc)
    except Exception:
        log.exception("unhandled error", extra={"kv": {"path": request.path}})
        return error(500, "internal error")


def _http_error(exc: web.HTTPException) -> web.Response:
    resp = error(exc.status, exc.reason.lower())
    allow = exc.headers.get("Allow")
    if allow:
        resp.headers["Allow"] = allow
    return resp


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /v1 call needs 'Authorization: Bearer <token>' (constant-time compare)."""
    if request.path.startswith(f"{API_PREFIX}/") or request.path == API_PREFIX:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        expected = request.app[TOKEN_KEY]
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode("utf-8", "surrogateescape"), expected
        )
        if not ok:
            return error(401, "unauthorized", ["need 'Authorization: Bearer <token>'"])
    return await handler(request)


class BadBody(Exception):
    """The body is not JSON, or not a valid request: 400."""

    def __init__(self, message: str, details: list[str]) -> None:
        self.message = message
        self.details = details
        super().__init__(message)


async def read_json(request: web.Request, *, allow_empty: bool) -> object:
    """The body as JSON; raises BadBody, or HTTPRequestEntityTooLarge (413) past 1 MiB."""
    body = await request.read()
    if not body.strip():
        if allow_empty:
            return {}
        raise BadBody("empty body", ["expected a JSON object"])
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBody("malformed JSON", [str(exc)]) from exc


async def read_model(request: web.Request, model: type[M], *, allow_empty: bool, invalid: str) -> M:
    """The body as a `model`; raises BadBody (message `invalid` when it does not validate)."""
    data = await read_json(request, allow_empty=allow_empty)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadBody(invalid, validation_details(exc)) from exc


async def put_plan(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME_KEY]
    try:
        plan = await read_model(request, Plan, allow_empty=False, invalid="invalid plan")
    except BadBody as exc:
        return error(400, exc.message, exc.details)
    try:
        applied = runtime.apply(plan)
    except StaleEpoch as exc:
        return error(409, "stale epoch", [str(exc)], currentEpoch=exc.current)
    except PlanRejected as exc:
        return error(400, "invalid plan", exc.details)
    except Draining as exc:
        return error(503, "draining", [str(exc)])
    ack = PlanAck(
        epoch=applied.epoch,
        rate=applied.rate,
        lease_seconds=applied.lease_seconds,
        renewed=applied.renewed,
    )
    return web.json_response(ack.to_wire())


async def get_stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[RUNTIME_KEY].stats().to_wire())


async def post_drain(request: web.Request) -> web.StreamResponse:
    try:
        drain = await read_model(
            request, DrainRequest, allow_empty=True, invalid="invalid drain request"
        )
    except BadBody as exc:
        return error(400, exc.message, exc.details)
    final = await request.app[RUNTIME_KEY].drain(drain.timeout_seconds)
    return web.json_response(final.to_wire())


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME_KEY]
    if runtime.ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "draining"}, status=503)


async def metrics(request: web.Request) -> web.StreamResponse:
    body = render(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(runtime: PodRuntime, token: str, registry: CollectorRegistry) -> web.Application:
    """The control API application; bodies above 1 MiB get 413."""
    if not token:
        raise ValueError("a non-empty token is required")
    app = web.Application(
        client_max_size=MAX_PLAN_BYTES, middlewares=[errors_middleware, auth_middleware]
    )
    app[RUNTIME_KEY] = runtime
    app[TOKEN_KEY] = token.encode("utf-8", "surrogateescape")
    app[REGISTRY_KEY] = registry
    app.router.add_put(PLAN_PATH, put_plan)
    app.router.add_get(STATS_PATH, get_stats, allow_head=False)
    app.router.add_post(DRAIN_PATH, post_drain)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
