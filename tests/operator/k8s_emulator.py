"""kmock's KubernetesEmulator with the gaps closed that the operator (and kopf) rely on.

kmock 0.8 keeps objects in memory and serves discovery; it does not fill metadata, filter by
labels, version objects, isolate the status subresource, answer 409/422, support PUT or
generateName, list namespaces, replay watches from a resourceVersion, or collect garbage. This
subclass serves every resource request itself (storing objects in kmock's `objects` array, so
kmock-style assertions still work) and leaves discovery (/api, /apis, /version) to kmock.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import json
import logging
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock

log = logging.getLogger("k8s-emulator")

JSON = dict[str, Any]
EVENT_LOG_SIZE = 20000
BOOKMARK_INTERVAL = 30.0  # real API servers send one about every minute; kopf gives up after 70 s
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

# (group, version, plural, kind, namespaced, subresources)
BUILTINS = (
    ("", "v1", "namespaces", "Namespace", False, ("status",)),
    ("", "v1", "pods", "Pod", True, ("status",)),
    ("", "v1", "secrets", "Secret", True, ()),
    ("", "v1", "events", "Event", True, ()),
    ("", "v1", "services", "Service", True, ("status",)),
    ("", "v1", "configmaps", "ConfigMap", True, ()),
    ("apps", "v1", "deployments", "Deployment", True, ("status",)),
    ("events.k8s.io", "v1", "events", "Event", True, ()),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("status",),
    ),
)


class ApiError(Exception):
    """An answer in Kubernetes' Status form."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def payload(self) -> JSON:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass(frozen=True)
class Route:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    sub: str | None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def parse_route(url_path: str) -> Route | None:
    """Resource routes only; None for discovery paths (served by kmock)."""
    parts = [p for p in url_path.strip("/").split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) or None
    return Route(group, version, plural, namespace, name, sub)


# ------------------------------------------------------------------ selectors

_REQ = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<val>[A-Za-z0-9._-]*)|\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?\s*$"
)


def _split_selector(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def label_match(selector: str | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics: =, ==, !=, in, notin, exists, !exists."""
    if not selector:
        return True
    for req in _split_selector(selector):
        m = _REQ.match(req)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {req!r}")
        key, neg = m.group("key"), bool(m.group("neg"))
        if m.group("op"):
            equal = labels.get(key) == m.group("val")
            if (m.group("op") == "!=") == equal:
                return False
        elif m.group("setop"):
            values = {v.strip() for v in m.group("set").split(",") if v.strip()}
            inside = key in labels and labels[key] in values
            if (m.group("setop") == "in") != inside:
                return False
        elif neg == (key in labels):
            return False
    return True


def _dig(obj: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def field_match(selector: str | None, obj: Mapping[str, Any]) -> bool:
    if not selector:
        return True
    for req in selector.split(","):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", req)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse field selector: {req!r}")
        actual = _dig(obj, m.group(1))
        equal = ("" if actual is None else str(actual)) == m.group(3)
        if (m.group(2) == "!=") == equal:
            return False
    return True


# ------------------------------------------------------------------ patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge is treated the same: close enough here)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?$")


def _validate_deployment(obj: Mapping[str, Any]) -> None:
    """The one piece of API validation the suite relies on: resource quantities."""
    template = (obj.get("spec") or {}).get("template") or {}
    for i, container in enumerate((template.get("spec") or {}).get("containers") or []):
        for section in ("requests", "limits"):
            for name, value in ((container.get("resources") or {}).get(section) or {}).items():
                if not _QUANTITY.match(str(value)):
                    field = f"spec.template.spec.containers[{i}].resources.{section}.{name}"
                    raise ApiError(
                        422,
                        "Invalid",
                        f"{field}: Invalid value: {value!r}: must be a quantity",
                    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _essence(obj: Mapping[str, Any]) -> JSON:
    """What a generation counts: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """The stateful API server used by the operator tests (see module docstring)."""

    _rv: int = attrs.field(default=0, init=False)
    _trimmed: int = attrs.field(default=0, init=False)
    _log: list[tuple[int, kmock.resource, str | None, JSON]] = attrs.field(factory=list, init=False)
    _changed: asyncio.Condition | None = attrs.field(default=None, init=False)
    _mutex: asyncio.Lock | None = attrs.field(default=None, init=False)
    _kinds: dict[tuple[str, str, str], tuple[str, bool, tuple[str, ...]]] = attrs.field(
        factory=dict, init=False
    )
    _status_writes: dict[tuple[str | None, str], list[float]] = attrs.field(
        factory=dict, init=False
    )

    def status_writes(self, namespace: str | None, name: str) -> list[float]:
        """Monotonic times of every write to an object's status subresource (throttle checks)."""
        return list(self._status_writes.get((namespace, name), []))

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for group, version, plural, kind, namespaced, subs in BUILTINS:
            self.declare(group, version, plural, kind, namespaced, subs)

    def declare(  # noqa: PLR0917 - mirrors the BUILTINS rows
        self,
        group: str,
        version: str,
        plural: str,
        kind: str,
        namespaced: bool,
        subresources: tuple[str, ...] = (),
        *,
        singular: str | None = None,
        shortnames: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
    ) -> None:
        """Serve a resource in discovery and in the object routes."""
        self._kinds[(group, version, plural)] = (kind, namespaced, subresources)
        self.resources[kmock.resource(group, version, plural)] = kmock.ResourceInfo(
            kind=kind,
            namespaced=namespaced,
            singular=singular or kind.lower(),
            verbs=set(ALL_VERBS),
            shortnames=set(shortnames),
            categories=set(categories),
            subresources=set(subresources),
        )

    # -------------------------------------------------------------- plumbing

    def _sync(self) -> tuple[asyncio.Condition, asyncio.Lock]:
        if self._changed is None or self._mutex is None:
            self._changed = asyncio.Condition()
            self._mutex = asyncio.Lock()
        return self._changed, self._mutex

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    async def _publish(
        self, res: kmock.resource, namespace: str | None, kind: str, obj: JSON
    ) -> None:
        changed, _ = self._sync()
        rv = int(obj.get("metadata", {}).get("resourceVersion") or self._rv)
        self._log.append((rv, res, namespace, {"type": kind, "object": copy.deepcopy(obj)}))
        if len(self._log) > EVENT_LOG_SIZE:
            excess = len(self._log) - EVENT_LOG_SIZE
            del self._log[:excess]
            self._trimmed += excess
        async with changed:
            changed.notify_all()

    def _kind_of(self, route: Route) -> tuple[str, bool, tuple[str, ...]]:
        found = self._kinds.get((route.group, route.version, route.plural))
        if found is None:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({route.plural})",
            )
        return found

    def _stored(self, res: kmock.resource, namespace: str | None, name: str) -> JSON | None:
        key = (res, namespace, name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else copy.deepcopy(obj.raw)

    def _store(self, res: kmock.resource, namespace: str | None, name: str, body: JSON) -> None:
        key = (res, namespace, name)
        if key in self.objects:
            self.objects[key].create(copy.deepcopy(body))
        else:
            self.objects[key] = copy.deepcopy(body)

    def _remove(self, res: kmock.resource, namespace: str | None, name: str) -> None:
        self.objects[(res, namespace, name)].delete()

    def items(self, res: kmock.resource, namespace: str | None = None) -> list[JSON]:
        """Live objects of a resource (test assertions)."""
        out = []
        for (r, ns, _name), obj in list(self.objects.items()):
            if r == res and not obj.deleted and (namespace is None or ns == namespace):
                out.append(copy.deepcopy(obj.raw))
        return out

    # -------------------------------------------------------------- entry point

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        route = parse_route(raw_request.path)
        if route is None or (route.group, route.version, route.plural) not in self._kinds:
            if route is not None and route.plural and (route.group or route.version):
                known_group = any(
                    g == route.group and v == route.version for g, v, _ in self._kinds
                )
                if known_group:
                    return self._error(
                        ApiError(404, "NotFound", f"unknown resource {route.plural}")
                    )
            return await super().__call__(raw_request)
        try:
            return await self._serve(raw_request, route)
        except ApiError as exc:
            return self._error(exc)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("emulator failed on %s %s", raw_request.method, raw_request.path)
            return self._error(ApiError(500, "InternalError", repr(exc)))

    @staticmethod
    def _error(exc: ApiError) -> aiohttp.web.Response:
        return aiohttp.web.json_response(exc.payload(), status=exc.code)

    async def _serve(
        self, req: aiohttp.web.BaseRequest, route: Route
    ) -> aiohttp.web.StreamResponse:
        method = req.method.upper()
        query = req.query
        if method == "GET" and query.get("watch") in ("true", "1"):
            return await self._watch(req, route)
        body: Any = None
        if req.can_read_body:
            raw = await req.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise ApiError(400, "BadRequest", "body is not JSON") from None
        if method == "GET" and route.name is None:
            return aiohttp.web.json_response(await self._list(route, query))
        if method == "GET":
            return aiohttp.web.json_response(await self._get(route))
        if method == "POST" and route.name is None:
            return aiohttp.web.json_response(await self._create(route, body), status=201)
        if method in ("PUT", "PATCH") and route.name is not None:
            ctype = req.headers.get("Content-Type", "application/json").split(";")[0].strip()
            return aiohttp.web.json_response(await self._update(route, method, ctype, body))
        if method == "DELETE" and route.name is not None:
            return aiohttp.web.json_response(await self._delete(route))
        if method == "DELETE":
            return aiohttp.web.json_response(await self._delete_collection(route, query))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {req.path}")

    # -------------------------------------------------------------- verbs

    def _res(self, route: Route) -> kmock.resource:
        return kmock.resource(route.group, route.version, route.plural)

    async def _list(self, route: Route, query: Mapping[str, str]) -> JSON:
        kind, _, _ = self._kind_of(route)
        _, mutex = self._sync()
        async with mutex:
            items = [
                o
                for o in self.items(self._res(route), route.namespace)
                if label_match(
                    query.get("labelSelector"), o.get("metadata", {}).get("labels") or {}
                )
                and field_match(query.get("fieldSelector"), o)
            ]
            rv = str(self._rv)
        return {
            "apiVersion": route.api_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    def _found(self, route: Route) -> JSON:
        """The object a route names, or the API's 404."""
        assert route.name is not None
        found = self._stored(self._res(route), route.namespace, route.name)
        if found is None:
            raise ApiError(404, "NotFound", f'{route.plural} "{route.name}" not found')
        return found

    async def _get(self, route: Route) -> JSON:
        return self._found(route)

    async def _create(self, route: Route, body: Any) -> JSON:
        kind, namespaced, subs = self._kind_of(route)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a JSON object is required")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", "metadata.name or metadata.generateName is required")
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if namespaced:
            if meta.get("namespace") and route.namespace and meta["namespace"] != route.namespace:
                raise ApiError(400, "BadRequest", "the namespace of the object does not match")
            meta["namespace"] = route.namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        obj.setdefault("apiVersion", route.api_version)
        obj.setdefault("kind", kind)
        if "status" in subs and route.plural != "customresourcedefinitions":
            obj.pop("status", None)
        if kind == "Deployment":
            obj.setdefault("spec", {}).setdefault("replicas", 1)
            _validate_deployment(obj)
        _, mutex = self._sync()
        async with mutex:
            ns = meta.get("namespace")
            if self._stored(self._res(route), ns, meta["name"]) is not None:
                raise ApiError(
                    409, "AlreadyExists", f'{route.plural} "{meta["name"]}" already exists'
                )
            meta.update(
                uid=str(uuid.uuid4()),
                resourceVersion=self._next_rv(),
                generation=1,
                creationTimestamp=_now(),
            )
            meta.pop("deletionTimestamp", None)
            self._store(self._res(route), ns, meta["name"], obj)
            await self._publish(self._res(route), ns, "ADDED", obj)
        if kind == "CustomResourceDefinition":
            self._register_crd(obj)
        return obj

    async def _update(self, route: Route, method: str, ctype: str, body: Any) -> JSON:
        _, _, subs = self._kind_of(route)
        assert route.name is not None
        if route.sub not in (None, "status"):
            raise ApiError(404, "NotFound", f"subresource {route.sub} is not served")
        res = self._res(route)
        _, mutex = self._sync()
        async with mutex:
            old = self._found(route)
            new = self._apply_change(old, method, ctype, body)
            if method == "PUT" or ctype != "application/json-patch+json":
                sent_rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
                if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
                    raise ApiError(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on {route.plural} "{route.name}": '
                        "the object has been modified; please apply your changes to the latest "
                        "version and try again",
                    )
            if route.sub == "status":
                writes = self._status_writes.setdefault((route.namespace, route.name), [])
                writes.append(asyncio.get_running_loop().time())
                merged = copy.deepcopy(old)
                merged["status"] = new.get("status", {})
                new = merged
            elif "status" in subs:
                new["status"] = copy.deepcopy(old.get("status"))
                if new["status"] is None:
                    new.pop("status")
            # The API server owns these; clients cannot change them.
            meta = new.setdefault("metadata", {})
            for key in ("uid", "creationTimestamp", "name", "namespace", "generation"):
                if key in old["metadata"]:
                    meta[key] = old["metadata"][key]
            if old["metadata"].get("deletionTimestamp"):
                meta["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old:
                return old
            if new.get("kind") == "Deployment":
                _validate_deployment(new)
            if _essence(new) != _essence(old):
                meta["generation"] = int(old["metadata"].get("generation") or 1) + 1
            meta["resourceVersion"] = self._next_rv()
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                await self._purge(res, route.namespace, route.name, new)
                return new
            self._store(res, route.namespace, route.name, new)
            await self._publish(res, route.namespace, "MODIFIED", new)
        return new

    @staticmethod
    def _apply_change(old: JSON, method: str, ctype: str, body: Any) -> JSON:
        if method == "PUT":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "a JSON object is required")
            return copy.deepcopy(body)
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError(400, "BadRequest", "a JSON patch must be a list")
            try:
                result: JSON = jsonpatch.apply_patch(old, body, in_place=False)
            except jsonpatch.JsonPatchTestFailed as exc:
                raise ApiError(422, "Invalid", f"the test operation failed: {exc}") from None
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise ApiError(422, "Invalid", f"invalid JSON patch: {exc}") from None
            return result
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be an object")
            patched: JSON = merge_patch(old, body)
            return patched
        raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {ctype}")

    async def _delete(self, route: Route) -> JSON:
        assert route.name is not None
        res = self._res(route)
        _, mutex = self._sync()
        async with mutex:
            old = self._found(route)
            await self._delete_object(res, route.namespace, route.name, old)
        return old

    async def _delete_object(
        self, res: kmock.resource, namespace: str | None, name: str, obj: JSON
    ) -> None:
        """Delete `obj` (updated in place); one with finalizers is only marked. Mutex held."""
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = _now()
                meta["resourceVersion"] = self._next_rv()
                self._store(res, namespace, name, obj)
                await self._publish(res, namespace, "MODIFIED", obj)
            return
        meta["resourceVersion"] = self._next_rv()
        await self._purge(res, namespace, name, obj)

    async def _purge(
        self, res: kmock.resource, namespace: str | None, name: str, obj: JSON
    ) -> None:
        """Gone for good: removed, announced, and what it owned collected. Mutex held."""
        self._remove(res, namespace, name)
        await self._publish(res, namespace, "DELETED", obj)
        await self._collect_garbage(obj["metadata"].get("uid"))

    async def _delete_collection(self, route: Route, query: Mapping[str, str]) -> JSON:
        listing = await self._list(route, query)
        for item in listing["items"]:
            name = item["metadata"]["name"]
            ns = item["metadata"].get("namespace")
            with contextlib.suppress(ApiError):
                await self._delete(Route(route.group, route.version, route.plural, ns, name, None))
        return {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}

    async def _collect_garbage(self, owner_uid: str | None) -> None:
        """Background cascading deletion of dependents (the garbage collector's job).

        Called with the mutex held; dependents with finalizers get a deletionTimestamp instead.
        """
        if not owner_uid:
            return
        for (res, ns, name), obj in list(self.objects.items()):
            if obj.deleted:
                continue
            raw = copy.deepcopy(obj.raw)
            refs = raw.get("metadata", {}).get("ownerReferences") or []
            if any(r.get("uid") == owner_uid for r in refs):
                await self._delete_object(res, ns, name, raw)

    # -------------------------------------------------------------- watch

    async def _watch(
        self, req: aiohttp.web.BaseRequest, route: Route
    ) -> aiohttp.web.StreamResponse:
        kind, _, _ = self._kind_of(route)
        res = self._res(route)
        bookmarks = req.query.get("allowWatchBookmarks") in ("true", "1")
        next_bookmark = asyncio.get_running_loop().time() + BOOKMARK_INTERVAL
        labels = req.query.get("labelSelector")
        fields = req.query.get("fieldSelector")
        since = req.query.get("resourceVersion")
        timeout = float(req.query.get("timeoutSeconds") or 0) or None
        changed, mutex = self._sync()

        def wanted(ns: str | None, obj: JSON) -> bool:
            if route.namespace is not None and ns != route.namespace:
                return False
            if route.name is not None and obj.get("metadata", {}).get("name") != route.name:
                return False
            return label_match(labels, obj.get("metadata", {}).get("labels") or {}) and field_match(
                fields, obj
            )

        initial: list[JSON] = []
        async with mutex:
            # Positions are absolute: index into the log plus the events trimmed off its front.
            if since and since != "0":
                start = int(since)
                oldest = self._log[0][0] if self._log else self._rv + 1
                if start < oldest - 1:
                    gone = ApiError(410, "Expired", f"too old resource version: {start}")
                    initial.append({"type": "ERROR", "object": gone.payload()})
                position = self._trimmed + next(
                    (i for i, (rv, *_rest) in enumerate(self._log) if rv > start),
                    len(self._log),
                )
            else:
                initial = [
                    {"type": "ADDED", "object": o}
                    for o in self.items(res, route.namespace)
                    if wanted(o.get("metadata", {}).get("namespace"), o)
                ]
                position = self._trimmed + len(self._log)
        resp = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(req)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        try:
            for event in initial:
                await resp.write(json.dumps(event).encode() + b"\n")
            if initial and initial[0]["type"] == "ERROR":
                return resp
            while True:
                batch = self._log[max(0, position - self._trimmed) :]
                position = self._trimmed + len(self._log)
                for _rv, r, ns, event in batch:
                    if r == res and wanted(ns, event["object"]):
                        await resp.write(json.dumps(event).encode() + b"\n")
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                if bookmarks and loop.time() >= next_bookmark:
                    next_bookmark = loop.time() + BOOKMARK_INTERVAL
                    mark = {"kind": kind, "apiVersion": route.api_version,
                            "metadata": {"resourceVersion": str(self._rv)}}  # fmt: skip
                    await resp.write(
                        json.dumps({"type": "BOOKMARK", "object": mark}).encode() + b"\n"
                    )
                wait = next_bookmark - loop.time() if bookmarks else None
                if remaining is not None:
                    wait = remaining if wait is None else min(wait, remaining)
                async with changed:
                    if position == self._trimmed + len(self._log):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(changed.wait(), wait)
        except (ConnectionResetError, RuntimeError):
            pass
        return resp

    # -------------------------------------------------------------- CRDs

    def _register_crd(self, crd: JSON) -> None:
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        for version in spec.get("versions", []):
            subs = tuple(version.get("subresources", {}) or {})
            self.declare(
                spec["group"],
                version["name"],
                names["plural"],
                names["kind"],
                spec.get("scope", "Namespaced") == "Namespaced",
                subs,
                singular=names.get("singular"),
                shortnames=tuple(names.get("shortNames", ())),
                categories=tuple(names.get("categories", ())),
            )
