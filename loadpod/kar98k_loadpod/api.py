"""Control API (aiohttp): plan in, stats out, drain, probes and /metrics.

HTTP only; every decision is `PodRuntime`'s. Errors are JSON {"error", "details"} and
bad input never crashes the handler.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from .metrics import CONTENT_TYPE_LATEST, render
from .model_base import WireModel
from .plan import MAX_PLAN_BYTES, Plan
from .protocol import API_PREFIX, DRAIN_PATH, PLAN_PATH, STATS_PATH, DrainRequest, PlanAck
from .runtime import Draining, PlanRejected, PodRuntime, StaleEpoch
from .targets import MAX_TARGETS, Target

log = logging.getLogger(__name__)
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*): (.*)$", re.DOTALL)
_FIELD_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]-]*: ")  # "path: message"

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


PARSE_SLICE_S = 0.001
"""Validating a plan's targets yields to the event loop after this much work."""


def parse_json(body: bytes, *, allow_empty: bool) -> object:
    """The body as JSON; raises BadBody (also for nesting too deep to parse)."""
    if not body.strip():
        if allow_empty:
            return {}
        raise BadBody("empty body", ["expected a JSON object"])
    try:
        return json.loads(body)
    except RecursionError:
        raise BadBody("malformed JSON", ["nested too deeply"]) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBody("malformed JSON", [str(exc)[:200]]) from exc


def parse_model(body: bytes, model: type[M], *, allow_empty: bool, invalid: str) -> M:
    """The body as a `model`; raises BadBody (message `invalid` when it does not validate)."""
    data = parse_json(body, allow_empty=allow_empty)
    try:
        return model.model_validate(data)
    except RecursionError:
        raise BadBody(invalid, ["nested too deeply"]) from None
    except ValidationError as exc:
        raise BadBody(invalid, validation_details(exc)) from exc


async def read_model(request: web.Request, model: type[M], *, allow_empty: bool, invalid: str) -> M:
    """The body (413 past 1 MiB) as a `model`; raises BadBody."""
    return parse_model(await request.read(), model, allow_empty=allow_empty, invalid=invalid)


async def parse_plan(body: bytes) -> Plan:
    """The body as a Plan, its targets validated one by one with the event loop running between
    slices of that work. A 1 MiB plan takes ~10 ms to validate: in one go it would hold back
    every send due meanwhile, and in a worker thread the loop would wait for the GIL in 5 ms
    steps. Raises BadBody with every problem, paths as in `validation_details`."""
    data = parse_json(body, allow_empty=False)
    raw = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(raw, list) or len(raw) > MAX_TARGETS:
        return parse_model(body, Plan, allow_empty=False, invalid="invalid plan")
    loop = asyncio.get_running_loop()
    since = loop.time()
    targets: list[Target] = []
    details: list[str] = []
    for index, item in enumerate(raw):
        try:
            targets.append(Target.model_validate(item))
        except RecursionError:
            details.append(f"targets[{index}]: nested too deeply")
        except ValidationError as exc:
            details.extend(
                f"targets[{index}].{line}"
                if _FIELD_LINE.match(line)
                else f"targets[{index}]: {line}"
                for line in validation_details(exc)
            )
        if loop.time() - since > PARSE_SLICE_S:
            await asyncio.sleep(0)
            since = loop.time()
    try:
        plan = Plan.model_validate({**data, "targets": targets})
    except RecursionError:
        raise BadBody("invalid plan", [*details, "nested too deeply"]) from None
    except ValidationError as exc:
        lines = validation_details(exc)
        if details:  # checks over the whole list saw only the valid targets: not judged
            lines = [line for line in lines if not line.startswith("targets: ")]
        raise BadBody("invalid plan", [*lines, *details]) from exc
    if details:
        raise BadBody("invalid plan", details)
    return plan


async def put_plan(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME_KEY]
    try:
        plan = await parse_plan(await request.read())
    except BadBody as exc:
        return error(400, exc.message, exc.details)
    try:
        applied = await runtime.apply_plan(plan)
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


class _QuietRequestHandler(RequestHandler):
    """Refuses a malformed or oversized request head with a bland JSON 400.

    aiohttp's own error page quotes the parser's message, which holds the offending header
    (an 8 KiB `Authorization: Bearer <token>...` comes back in the body), and logs it with a
    traceback. Here neither the body nor the log carries any byte of the request.
    """

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 and not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        log.warning(
            "refused a malformed HTTP request",
            extra={"kv": {"status": status, "reason": type(exc).__name__ if exc else None}},
        )
        resp = error(400, "bad request", ["malformed or oversized request line or headers"])
        resp.force_close()
        return resp


class _QuietServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class ControlRunner(web.AppRunner):
    """AppRunner whose connections refuse bad request heads without echoing or logging them."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _QuietServer
        return server


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
