"""The controller's side of the control API: an async client that speaks only the wire models.

Plans go out as `Plan`, stats come back as `PodStats`, the paths come from `protocol`: every
caller (the controller core, the benchmark, the tests) talks to load pods through this class,
so the protocol is written down once. Short timeouts everywhere: a pod that does not answer a
plan push within half a second is treated as failing, so one slow pod never holds up a tick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from .model_base import WireModel
from .plan import Plan
from .protocol import DRAIN_PATH, PLAN_PATH, STATS_PATH, DrainRequest, PlanAck
from .stats import PodStats, TargetStats

PUSH_TIMEOUT = 0.5
STATS_TIMEOUT = 1.5


@dataclass(frozen=True)
class PodEndpoint:
    """One load pod as a client addresses it."""

    name: str  # pod name (local: "pod-0"; k8s: metadata.name)
    base_url: str  # "http://127.0.0.2:8080"
    token: str


class PodCallError(Exception):
    """A control-API call failed: transport error, timeout or an unexpected status."""

    def __init__(self, pod: str, what: str, detail: str, status: int | None = None) -> None:
        self.pod = pod
        self.status = status
        super().__init__(f"{pod}: {what}: {detail}")


def _wire_keys(model: type[WireModel]) -> frozenset[str]:
    return frozenset(f.alias or n for n, f in model.model_fields.items())


_STATS_KEYS = _wire_keys(PodStats)
_TARGET_KEYS = _wire_keys(TargetStats)
_ACK_KEYS = _wire_keys(PlanAck)


def _known(data: Any, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return {k: v for k, v in data.items() if k in keys}


def parse_stats(data: Any) -> PodStats:
    """PodStats from a pod's JSON, ignoring fields this client does not know yet.

    The wire models refuse unknown keys; a newer load pod adding a field must not make an
    older controller blind, so unknown keys are dropped here before validation.
    """
    if not isinstance(data, dict):
        raise ValueError("stats must be a JSON object")
    clean = _known(data, _STATS_KEYS)
    targets = clean.get("targets")
    if isinstance(targets, dict):
        clean["targets"] = {
            name: _known(t, _TARGET_KEYS) if isinstance(t, dict) else t
            for name, t in targets.items()
        }
    return PodStats.model_validate(clean)


def encode_plan(plan: Plan) -> bytes:
    """The JSON body of a plan push (camelCase, unset optional fields left out)."""
    return plan.model_dump_json(by_alias=True, exclude_none=True).encode()


class PodClient:
    """HTTP client for the control API of many pods over one connection pool."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PodClient:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=4, force_close=False)
        self._session = aiohttp.ClientSession(
            connector=connector, json_serialize=json.dumps, raise_for_status=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("PodClient used outside 'async with'")
        return self._session

    async def push_plan(
        self, pod: PodEndpoint, plan: Plan, within: float = PUSH_TIMEOUT
    ) -> PlanAck:
        """PUT the plan (PLAN_PATH); raises PodCallError unless 2xx."""
        data = await self._call(
            pod, "PUT", PLAN_PATH, what="push plan", body=encode_plan(plan), within=within
        )
        try:
            return PlanAck.model_validate(_known(data, _ACK_KEYS))
        except ValueError as exc:
            raise PodCallError(pod.name, "push plan", f"bad answer: {exc}") from None

    async def stats(self, pod: PodEndpoint, within: float = STATS_TIMEOUT) -> PodStats:
        """GET the stats (STATS_PATH)."""
        data = await self._call(pod, "GET", STATS_PATH, what="pull stats", body=None, within=within)
        return self._parse(pod, "pull stats", data)

    async def drain(self, pod: PodEndpoint, timeout_seconds: float) -> PodStats:
        """POST to DRAIN_PATH: stop sending, wait for in-flight sends; returns the final stats."""
        body = json.dumps(DrainRequest(timeout_seconds=timeout_seconds).to_wire()).encode()
        data = await self._call(
            pod, "POST", DRAIN_PATH, what="drain", body=body, within=timeout_seconds + 2.0
        )
        return self._parse(pod, "drain", data)

    def _parse(self, pod: PodEndpoint, what: str, data: Any) -> PodStats:
        try:
            return parse_stats(data)
        except ValueError as exc:
            raise PodCallError(pod.name, what, f"bad stats: {exc}") from None

    async def _call(
        self,
        pod: PodEndpoint,
        method: str,
        path: str,
        *,
        what: str,
        body: bytes | None,
        within: float,
    ) -> Any:
        headers = {"Authorization": f"Bearer {pod.token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = pod.base_url.rstrip("/") + path
        try:
            async with self.session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=within),
            ) as resp:
                text = await resp.text()
                if resp.status >= 300:
                    raise PodCallError(
                        pod.name, what, f"HTTP {resp.status}: {text[:200]}", resp.status
                    )
                return json.loads(text) if text else None
        except TimeoutError:
            raise PodCallError(pod.name, what, f"no answer within {within:g}s") from None
        except aiohttp.ClientError as exc:
            raise PodCallError(pod.name, what, f"{type(exc).__name__}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise PodCallError(pod.name, what, f"answer is not JSON: {exc}") from None
