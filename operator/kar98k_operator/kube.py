"""A small async Kubernetes API client on aiohttp, for the calls kopf does not make for us.

Why not the `kubernetes` client: it is synchronous and turns every answer into generated models;
the operator only needs JSON in and out (children, pods, status patches, watches). Credentials come
from kopf's own login (`kopf.ConnectionInfo`), so there is one source of truth for auth. Request
and response bodies are never logged: a Secret carries the load pods' token.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import kopf

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class KubeError(Exception):
    """An API call that failed, with the API's status code and reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}")


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


def _error(status: int, payload: Any, fallback: str) -> KubeError:
    reason = fallback
    message = fallback
    if isinstance(payload, dict):
        reason = str(payload.get("reason") or fallback)
        message = str(payload.get("message") or fallback)
    if status == 404:
        return NotFound(status, reason, message)
    if status == 409:
        return Conflict(status, reason, message)
    return KubeError(status, reason, message)


def path(
    api_version: str,
    plural: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    sub: str | None = None,
) -> str:
    """The URL path of a collection or object: `v1` → /api/v1, `apps/v1` → /apis/apps/v1."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
    if sub:
        base += f"/{sub}"
    return base


def connection_from_kubeconfig(config_file: str | None = None) -> kopf.ConnectionInfo:
    """Credentials from a kubeconfig file (KUBECONFIG or ~/.kube/config when None)."""
    import kubernetes.client  # noqa: PLC0415  (heavy; loaded only when connecting)
    import kubernetes.config  # noqa: PLC0415

    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=config_file, client_configuration=cfg
    )
    return _from_client_configuration(cfg)


def connection_from_environment() -> kopf.ConnectionInfo:
    """In-cluster service account first, else the kubeconfig: the standard lookup order."""
    import kubernetes.client  # noqa: PLC0415
    import kubernetes.config  # noqa: PLC0415

    cfg = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=cfg
        )
    except kubernetes.config.ConfigException:
        return connection_from_kubeconfig()
    return _from_client_configuration(cfg)


def _from_client_configuration(cfg: Any) -> kopf.ConnectionInfo:
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None)
    if len(parts) == 1:
        token = parts[0]
    elif len(parts) == 2:
        scheme, token = parts[0], parts[1]
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


class Kube:
    """JSON over HTTP to the API server; one aiohttp session, re-authenticated on 401."""

    def __init__(
        self,
        credentials: Callable[[], kopf.ConnectionInfo],
        *,
        timeout: float = 30.0,
    ) -> None:
        self._credentials = credentials
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._info: kopf.ConnectionInfo | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self, *, renew: bool = False) -> tuple[aiohttp.ClientSession, str]:
        async with self._lock:
            if renew and self._session is not None:
                await self._session.close()
                self._session = None
            if self._session is None:
                self._info = self._credentials()
                connector: aiohttp.BaseConnector | None = None
                if self._info.server.startswith("https"):
                    connector = aiohttp.TCPConnector(ssl=self._info.as_ssl_context())
                self._session = aiohttp.ClientSession(
                    connector=connector,
                    headers=self._info.as_http_headers(),
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                )
            assert self._info is not None
            return self._session, self._info.server.rstrip("/")

    async def close(self) -> None:
        async with self._lock:
            if self._session is not None:
                await self._session.close()
                self._session = None

    async def request(
        self,
        method: str,
        url_path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        """One call; raises NotFound/Conflict/KubeError on failure; the JSON answer otherwise."""
        for attempt in (1, 2):
            session, server = await self._ensure(renew=attempt == 2)
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": content_type} if body is not None else {}
            async with session.request(
                method,
                server + url_path,
                data=data,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                text = await resp.text()
                try:
                    payload = json.loads(text) if text else {}
                except ValueError:
                    payload = {"message": text[:200]}
                if resp.status == 401 and attempt == 1:
                    continue
                if resp.status >= 400:
                    raise _error(resp.status, payload, resp.reason or "error")
                return payload if isinstance(payload, dict) else {"items": payload}
        raise KubeError(401, "Unauthorized", "credentials were refused twice")

    async def get(self, url_path: str, params: Mapping[str, str] | None = None) -> JSON:
        return await self.request("GET", url_path, params=params)

    async def get_or_none(self, url_path: str) -> JSON | None:
        try:
            return await self.get(url_path)
        except NotFound:
            return None

    async def create(self, collection_path: str, obj: JSON) -> JSON:
        return await self.request("POST", collection_path, body=obj)

    async def replace(self, url_path: str, obj: JSON) -> JSON:
        return await self.request("PUT", url_path, body=obj)

    async def merge_patch(self, url_path: str, patch: JSON) -> JSON:
        return await self.request("PATCH", url_path, body=patch, content_type=MERGE_PATCH)

    async def delete(self, url_path: str, *, missing_ok: bool = True) -> JSON | None:
        try:
            return await self.request("DELETE", url_path, body={"propagationPolicy": "Background"})
        except NotFound:
            if missing_ok:
                return None
            raise

    async def list(self, collection_path: str, *, label_selector: str | None = None) -> JSON:
        params = {"labelSelector": label_selector} if label_selector else None
        return await self.get(collection_path, params=params)

    async def watch(
        self,
        collection_path: str,
        *,
        label_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
    ) -> AsyncIterator[JSON]:
        """Watch events ({type, object}) until the server ends the stream; ERROR events raise."""
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if label_selector:
            params["labelSelector"] = label_selector
        if resource_version:
            params["resourceVersion"] = resource_version
            params["allowWatchBookmarks"] = "true"
        session, server = await self._ensure()
        timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30)
        async with session.get(server + collection_path, params=params, timeout=timeout) as resp:
            if resp.status >= 400:
                text = await resp.text()
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = {"message": text[:200]}
                raise _error(resp.status, payload, resp.reason or "error")
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield _watch_event(line)
            if buffer.strip():
                yield _watch_event(buffer)


def _watch_event(line: bytes) -> JSON:
    event: JSON = json.loads(line)
    if event.get("type") == "ERROR":
        obj = event.get("object") or {}
        raise _error(int(obj.get("code") or 500), obj, "watch error")
    return event
