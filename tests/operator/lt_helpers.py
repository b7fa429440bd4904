"""Small helpers for the operator scenarios: manifests, API shortcuts, polling with deadlines."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kar98k_operator import names
from kar98k_operator.kube import JSON, Kube, NotFound, path

T = TypeVar("T")


def manifest(name: str, target_url: str, **spec: Any) -> JSON:
    """A LoadTest against one HTTP target; keyword arguments merge into spec (deeply)."""
    body: JSON = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name},
        "spec": {
            "targets": [{"name": "fast", "url": target_url}],
            "pattern": {"baseTPS": 100},
            "loadPods": {"replicas": 1, "startTimeout": "30s"},
        },
    }
    _deep_merge(body["spec"], spec)
    return body


def _deep_merge(into: JSON, extra: JSON) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def lt_path(ns: str, name: str | None = None) -> str:
    return path(names.API_VERSION, names.PLURAL, namespace=ns, name=name)


async def apply(api: Kube, ns: str, body: JSON) -> JSON:
    return await api.create(lt_path(ns), body)


async def get_lt(api: Kube, ns: str, name: str) -> JSON | None:
    return await api.get_or_none(lt_path(ns, name))


async def status_of(api: Kube, ns: str, name: str) -> JSON:
    obj = await get_lt(api, ns, name)
    return dict((obj or {}).get("status") or {})


async def patch_lt(api: Kube, ns: str, name: str, patch: JSON) -> JSON:
    return await api.merge_patch(lt_path(ns, name), patch)


async def wait_for(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    what: str,
    interval: float = 0.1,
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `within` s."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


async def wait_status(
    api: Kube, ns: str, name: str, check: Callable[[JSON], bool], *, within: float, what: str
) -> JSON:
    async def probe() -> JSON | None:
        status = await status_of(api, ns, name)
        return status if status and check(status) else None

    try:
        return await wait_for(probe, within=within, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstatus: {await status_of(api, ns, name)}") from None


async def wait_phase(api: Kube, ns: str, name: str, *phases: str, within: float = 30.0) -> JSON:
    return await wait_status(
        api,
        ns,
        name,
        lambda s: s.get("phase") in phases,
        within=within,
        what=f"phase in {phases}",
    )


def running_with(ready: int) -> Callable[[JSON], bool]:
    """A wait_status check: phase Running with `ready` load pods ready."""
    return lambda s: s.get("phase") == "Running" and s.get("readyPods") == ready


def condition(status: JSON, ctype: str) -> JSON:
    for cond in status.get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return {}


async def events_of(api: Kube, ns: str, name: str) -> list[JSON]:
    listing = await api.get(
        path("v1", "events", namespace=ns), params={"fieldSelector": f"involvedObject.name={name}"}
    )
    return list(listing.get("items") or [])


async def wait_event(api: Kube, ns: str, name: str, reason: str, *, within: float = 10.0) -> JSON:
    async def probe() -> JSON | None:
        for event in await events_of(api, ns, name):
            if event.get("reason") == reason:
                return event
        return None

    return await wait_for(probe, within=within, what=f"event {reason} on {name}")


async def children(api: Kube, ns: str, name: str) -> dict[str, list[JSON]]:
    """The Deployments, Secrets and Pods labelled for this LoadTest."""
    selector = f"{names.LABEL_LOADTEST}={name}"
    out: dict[str, list[JSON]] = {}
    for key, api_version, plural in (
        ("deployments", "apps/v1", "deployments"),
        ("secrets", "v1", "secrets"),
        ("pods", "v1", "pods"),
    ):
        listing = await api.list(path(api_version, plural, namespace=ns), label_selector=selector)
        out[key] = list(listing.get("items") or [])
    return out


async def delete_and_wait(api: Kube, ns: str, name: str, *, within: float = 20.0) -> None:
    await api.delete(lt_path(ns, name))

    async def gone() -> bool:
        try:
            await api.get(lt_path(ns, name))
        except NotFound:
            return True
        return False

    await wait_for(gone, within=within, what=f"LoadTest {ns}/{name} to be gone")
