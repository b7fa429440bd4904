"""spec.cleanup of a finished run: after ttlSecondsAfterFinished, delete what the policy says.

`none` keeps everything, `pods` deletes the Deployment and the Secret, `all` deletes the LoadTest
itself (its children follow by owner reference). status.cleanedUp records that it was done, so a
restarted operator does not do it twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kar98k.spec import LoadTestSpec
from kar98k.spec.model import CleanupAction
from kar98k.spec.status import LoadTestStatus, Phase, parse_time

from .. import names
from ..kube import path
from .bad_input import SPEC_FAILURES
from .context import IDLE_POLL, RunContext

# How long a finished LoadTest's daemon rests between looks (a new runId wakes it at once).
FINISHED_POLL = IDLE_POLL * 5


# Labels and annotations by which Argo CD and Flux track what they apply.
GITOPS_MARKERS = (
    "argocd.argoproj.io/tracking-id",
    "argocd.argoproj.io/instance",
    "app.kubernetes.io/instance",
    "kustomize.toolkit.fluxcd.io/name",
    "helm.toolkit.fluxcd.io/name",
)


def gitops_conflict(meta: Mapping[str, Any], spec: LoadTestSpec) -> str | None:
    """Why `cleanup: all` would fight a GitOps tool on this LoadTest, or None."""
    actions = {spec.cleanup.on_success, spec.cleanup.on_failure}
    if CleanupAction.ALL not in actions:
        return None
    keys = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    found = [marker for marker in GITOPS_MARKERS if marker in keys]
    if not found:
        return None
    return (
        f"cleanup 'all' deletes this LoadTest after its run, but {found[0]} says a GitOps tool "
        "manages it: it will be re-created and run again, forever. Use cleanup 'pods' "
        "(docs/gitops.md)."
    )


async def after_finish(ctx: RunContext, spec: LoadTestSpec, status: LoadTestStatus) -> None:
    """spec.cleanup once the TTL has passed; then wait for a new runId."""
    if status.cleaned_up or ctx.completed_reason() in SPEC_FAILURES:
        await ctx.sleep(FINISHED_POLL)
        return
    cleanup = spec.cleanup
    action = cleanup.on_success if status.phase == Phase.SUCCEEDED else cleanup.on_failure
    ttl = float(cleanup.ttl_seconds_after_finished or 0)
    finished = parse_time(status.completion_time) if status.completion_time else None
    due = (finished or datetime.now(UTC)) + timedelta(seconds=ttl)
    remaining = (due - datetime.now(UTC)).total_seconds()
    if remaining > 0:
        await ctx.sleep(min(remaining, FINISHED_POLL))
        return
    body = ctx.snapshot()
    if action is CleanupAction.PODS:
        await ctx.children.delete_all(body)
        ctx.event("CleanedUp", "deleted the load-pod Deployment and Secret (spec.cleanup)")
    elif action is CleanupAction.ALL:
        ctx.event("CleanedUp", "deleting the LoadTest (spec.cleanup)")
        # No status writes from here on: they would only race kopf's finalizer removal.
        ctx.writer.gone = True
        await ctx.kube.delete(
            path(names.API_VERSION, names.PLURAL, namespace=ctx.namespace, name=ctx.name)
        )
        return
    ctx.writer.set(LoadTestStatus(cleaned_up=True))
