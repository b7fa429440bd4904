"""The objects a LoadTest owns: a Secret with the control token and the load-pod Deployment.

Every function here is idempotent: it reads what exists, writes only when the object differs from
what the LoadTest asks for, and never makes a second copy. Ownership uses the LoadTest's real uid,
so Kubernetes garbage-collects the children when the LoadTest goes.
"""

from __future__ import annotations

import base64
import copy
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from kar98k.spec.model import LoadPodTemplate, LoadTestSpec

from . import names
from .config import OperatorConfig
from .kube import JSON, Conflict, Kube, path

log = logging.getLogger(__name__)

HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
RESERVED_ENV = frozenset({"KAR98K_TOKEN", "KAR98K_POD_NAME", "KAR98K_LISTEN"})


def owner_reference(owner: Mapping[str, Any]) -> JSON:
    """A controller owner reference to the owner (a LoadTest, or the LoadTestSchedule of a run);
    refuses an owner without a uid."""
    meta = owner.get("metadata", {})
    uid = meta.get("uid")
    if not uid:
        raise ValueError(f"the {owner.get('kind') or names.KIND} has no metadata.uid")
    return {
        "apiVersion": names.API_VERSION,
        "kind": owner.get("kind") or names.KIND,
        "name": meta["name"],
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def common_labels(loadtest: str) -> dict[str, str]:
    return {
        **names.pod_labels(loadtest),
        names.LABEL_MANAGED_BY: names.MANAGER,
        names.LABEL_PART_OF: "kar98k",
        "app.kubernetes.io/instance": loadtest,
    }


def child_metadata(owner: Mapping[str, Any], name: str) -> JSON:
    """Metadata of a child: beside its LoadTest, labelled for it, owned by it."""
    loadtest = owner["metadata"]["name"]
    return {
        "name": name,
        "namespace": owner["metadata"]["namespace"],
        "labels": common_labels(loadtest),
        "ownerReferences": [owner_reference(owner)],
    }


def new_token() -> str:
    return secrets.token_urlsafe(32)


def secret_manifest(owner: Mapping[str, Any], token: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": child_metadata(owner, names.secret_name(owner["metadata"]["name"])),
        "data": {names.TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def replicas_for(spec: LoadTestSpec) -> int:
    """loadPods.replicas, else ceil(maxTPS / perPodMaxTPS), else one pod."""
    return spec.load_pods.desired(spec.pattern.ceiling)


def _affinity(spec: LoadTestSpec, loadtest: str) -> JSON:
    affinity = copy.deepcopy(spec.load_pods.affinity)
    if spec.load_pods.separate:
        anti = affinity.setdefault("podAntiAffinity", {})
        required = anti.setdefault("requiredDuringSchedulingIgnoredDuringExecution", [])
        required.append(
            {
                "labelSelector": {"matchLabels": names.pod_labels(loadtest)},
                "topologyKey": HOSTNAME_TOPOLOGY,
            }
        )
    return affinity


def _env(spec: LoadTestSpec, loadtest: str, port: int) -> list[JSON]:
    """The user's env first, then ours; ours are reserved (a user entry of that name is dropped)."""
    user = [dict(e) for e in spec.load_pods.env if e.get("name") not in RESERVED_ENV]
    ours: list[JSON] = [
        {
            "name": "KAR98K_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": names.secret_name(loadtest), "key": names.TOKEN_KEY}
            },
        },
        {"name": "KAR98K_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "KAR98K_LISTEN", "value": f"0.0.0.0:{port}"},
    ]
    return user + ours


def _probe(probe_path: str, period: int, failures: int) -> JSON:
    return {
        "httpGet": {"path": probe_path, "port": names.CONTROL_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 1,
        "failureThreshold": failures,
    }


def pod_template(spec: LoadTestSpec, loadtest: str, config: OperatorConfig) -> JSON:
    """The load pod: non-root, read-only root, no capabilities, probes on the control port."""
    load = spec.load_pods
    container: JSON = {
        "name": names.CONTAINER_NAME,
        "image": load.image or config.loadpod_image,
        "imagePullPolicy": config.image_pull_policy,
        "ports": [
            {
                "name": names.CONTROL_PORT_NAME,
                "containerPort": config.control_port,
                "protocol": "TCP",
            }
        ],
        "env": _env(spec, loadtest, config.control_port),
        "resources": copy.deepcopy(load.resources or config.default_resources),
        "readinessProbe": _probe("/readyz", 2, 2),
        "livenessProbe": _probe("/healthz", 10, 3),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod_spec: JSON = {
        "containers": [container],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": config.run_as_user,
            "runAsGroup": config.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if load.node_selector:
        pod_spec["nodeSelector"] = dict(load.node_selector)
    if load.tolerations:
        pod_spec["tolerations"] = copy.deepcopy(load.tolerations)
    affinity = _affinity(spec, loadtest)
    if affinity:
        pod_spec["affinity"] = affinity
    template: JSON = {"metadata": {"labels": common_labels(loadtest)}, "spec": pod_spec}
    if load.template is None:
        return template
    return with_overlay(template, load.template, loadtest)


# Pod spec fields an overlay sets as they are (None: not given, the operator's value stays).
_OVERLAY_SCALARS = (
    "service_account_name",
    "automount_service_account_token",
    "priority_class_name",
    "runtime_class_name",
    "scheduler_name",
)


def with_overlay(template: JSON, overlay: LoadPodTemplate, loadtest: str) -> JSON:
    """The pod template with `spec.loadPods.template` merged in.

    The overlay adds labels (the operator's keys win; the model refuses them anyway),
    annotations, and pod spec fields; it cannot reach the container (image, token env, control
    port, probes), which the model does not even describe. securityContext fields replace the
    operator's, and an explicit null removes one (runAsUser: null lets OpenShift assign a UID);
    runAsNonRoot stays true."""
    out = copy.deepcopy(template)
    meta, pod = out["metadata"], out["spec"]
    meta["labels"] = {**overlay.metadata.labels, **meta["labels"]}
    if overlay.metadata.annotations:
        meta["annotations"] = dict(overlay.metadata.annotations)
    extra = overlay.spec
    fields = type(extra).model_fields
    for attr in _OVERLAY_SCALARS:
        value = getattr(extra, attr)
        if value is not None:
            pod[fields[attr].alias or attr] = value
    if extra.image_pull_secrets:
        pod["imagePullSecrets"] = [ref.to_wire() for ref in extra.image_pull_secrets]
    if extra.topology_spread_constraints:
        own = {"matchLabels": names.pod_labels(loadtest)}
        pod["topologySpreadConstraints"] = [
            {"labelSelector": own, **c.to_wire()} for c in extra.topology_spread_constraints
        ]
    security = extra.security_context
    pod["securityContext"] = security.applied_to(pod["securityContext"])
    if "seccomp_profile" in security.model_fields_set:
        # The container's own RuntimeDefault would otherwise win over the pod's choice.
        for container in pod["containers"]:
            container["securityContext"].pop("seccompProfile", None)
    return out


def deployment_manifest(
    owner: Mapping[str, Any], spec: LoadTestSpec, config: OperatorConfig, replicas: int
) -> JSON:
    loadtest = owner["metadata"]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(owner, names.deployment_name(loadtest)),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": names.pod_labels(loadtest)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": pod_template(spec, loadtest, config),
        },
    }


def replacing(actual: Any, desired: Any) -> Any:
    """A JSON merge patch turning `actual` into `desired`: keys we no longer want become null."""
    if isinstance(desired, Mapping) and isinstance(actual, Mapping):
        out = {key: replacing(actual.get(key), value) for key, value in desired.items()}
        out.update({key: None for key in actual if key not in desired})
        return out
    return copy.deepcopy(desired)


# Parts of the Deployment the server never defaults, so a key the LoadTest dropped (an overlay
# label, `runAsUser: null`) must go too: compared exactly, not as a subset.
EXACT_PATHS: tuple[tuple[str, ...], ...] = (
    ("spec", "template", "metadata", "labels"),
    ("spec", "template", "metadata", "annotations"),
    ("spec", "template", "spec", "securityContext"),
)


def _at(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj or None


def up_to_date(actual: Any, desired: Any) -> bool:
    """`actual` says all `desired` says, and no more where the server adds nothing."""
    return contains(actual, desired) and all(
        _at(actual, keys) == _at(desired, keys) for keys in EXACT_PATHS
    )


def contains(actual: Any, desired: Any) -> bool:
    """Whether `actual` already says everything `desired` says (server defaults may add more)."""
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and contains(actual[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(desired)
            and all(contains(a, d) for a, d in zip(actual, desired, strict=True))
        )
    return bool(actual == desired)


class Children:
    """Create-or-update of a LoadTest's children through the API."""

    def __init__(self, kube: Kube, config: OperatorConfig) -> None:
        self.kube = kube
        self.config = config

    async def _apply(self, collection: str, desired: JSON) -> JSON:
        """Create, or merge-patch the parts we own when they differ (PATCH, not PUT: the
        operator's RBAC grants patch).

        No resourceVersion precondition: the Deployment controller writes status, and so bumps
        the resourceVersion, many times a second while pods come and go; a precondition failed
        every retry on a real API server. The patch only sets what the LoadTest owns (and nulls
        what it no longer wants, as read just before), so a concurrent write to other fields
        survives it."""
        name = desired["metadata"]["name"]
        item = f"{collection}/{name}"
        for _ in range(3):
            existing = await self.kube.get_or_none(item)
            if existing is None:
                try:
                    return await self.kube.create(collection, desired)
                except Conflict:
                    continue
            if up_to_date(existing, desired):
                return existing
            patch: JSON = {
                key: replacing(existing.get(key), value)
                for key, value in desired.items()
                if key not in ("metadata", "apiVersion", "kind")
            }
            patch["metadata"] = {
                "labels": desired["metadata"].get("labels", {}),
                "ownerReferences": desired["metadata"]["ownerReferences"],
            }
            try:
                return await self.kube.merge_patch(item, patch)
            except Conflict:
                continue
        raise Conflict(409, "Conflict", f"{item} kept changing under the operator")

    async def ensure_secret(self, owner: Mapping[str, Any]) -> str:
        """The control token: read from the existing Secret, or minted once and stored."""
        meta = owner["metadata"]
        collection = path("v1", "secrets", namespace=meta["namespace"])
        existing = await self.kube.get_or_none(f"{collection}/{names.secret_name(meta['name'])}")
        token = _token_of(existing) or new_token()
        desired = secret_manifest(owner, token)
        applied = await self._apply(collection, desired)
        return _token_of(applied) or token

    async def ensure_deployment(
        self, owner: Mapping[str, Any], spec: LoadTestSpec, replicas: int
    ) -> JSON:
        meta = owner["metadata"]
        collection = path("apps/v1", "deployments", namespace=meta["namespace"])
        desired = deployment_manifest(owner, spec, self.config, replicas)
        return await self._apply(collection, desired)

    async def scale(self, owner: Mapping[str, Any], replicas: int) -> None:
        """Set the replica count only (mid-run resizes, scale to zero at the end)."""
        meta = owner["metadata"]
        item = path(
            "apps/v1",
            "deployments",
            namespace=meta["namespace"],
            name=names.deployment_name(meta["name"]),
        )
        existing = await self.kube.get_or_none(item)
        if existing is not None and existing.get("spec", {}).get("replicas") != replicas:
            await self.kube.merge_patch(item, {"spec": {"replicas": replicas}})

    async def delete_all(self, owner: Mapping[str, Any]) -> None:
        """Delete the Deployment (its pods follow) and the Secret."""
        meta = owner["metadata"]
        ns, name = meta["namespace"], meta["name"]
        await self.kube.delete(
            path("apps/v1", "deployments", namespace=ns, name=names.deployment_name(name))
        )
        await self.kube.delete(path("v1", "secrets", namespace=ns, name=names.secret_name(name)))


def _token_of(secret: Mapping[str, Any] | None) -> str | None:
    if not secret:
        return None
    raw = (secret.get("data") or {}).get(names.TOKEN_KEY)
    if not raw:
        return None
    try:
        return base64.b64decode(raw).decode() or None
    except (ValueError, UnicodeDecodeError):
        return None
