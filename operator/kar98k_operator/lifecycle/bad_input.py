"""Input the run cannot start with: a spec the model rejects, one the operator's guardrails
refuse (targets outside allowedTargets, a ceiling above maxTotalTPS), children the API server
refuses.

All end in phase Failed with the reason named (the spec path, or the server's own message) and
no traffic. The spec caused them, so an edit of the spec (a new generation) tries again; no new
runId is needed, and the operator never crash-loops on them.
"""

from __future__ import annotations

from kar98k.spec import LoadTestSpec, SpecError
from kar98k.spec.status import ConditionType

from ..guardrails import Refusal, refusals
from ..kube import KubeError
from .context import RunContext

INVALID_SPEC = "InvalidSpec"
REJECTED = "ChildrenRejected"
NOT_ALLOWED = "NotAllowed"  # the operator's guardrails refused the spec
SPEC_FAILURES = frozenset({INVALID_SPEC, REJECTED, NOT_ALLOWED})
# Answers that mean "this object will never be accepted" rather than "try again later".
REFUSALS = frozenset({400, 403, 422})


def spec_problems(exc: SpecError) -> str:
    """Every problem of a spec on one line, each naming its `spec.…` path."""
    return "; ".join(str(e) for e in exc.errors) or str(exc)


def reject_spec(ctx: RunContext, exc: SpecError, generation: int) -> None:
    """Phase Failed with the offending fields named (once per generation)."""
    if ctx.rejected_generation == generation:
        return
    ctx.rejected_generation = generation
    message = spec_problems(exc)
    ctx.fail(INVALID_SPEC, message, headline=f"invalid spec: {message}", generation=generation)
    ctx.writer.condition(
        ConditionType.SPEC_APPLIED, False, INVALID_SPEC, message, generation=generation
    )


def guardrail_refusals(ctx: RunContext, spec: LoadTestSpec) -> list[Refusal]:
    """What the operator's guardrails refuse in `spec` (empty: allowed)."""
    config = ctx.config
    return refusals(spec, config.allowed_targets, config.max_total_tps)


def refuse_spec(ctx: RunContext, found: list[Refusal], generation: int) -> None:
    """Phase Failed, no pods: SpecApplied names the reason (the first guardrail broken) and
    every field at fault (once per generation)."""
    if ctx.rejected_generation == generation:
        return
    ctx.rejected_generation = generation
    message = "; ".join(r.message for r in found)
    ctx.fail(NOT_ALLOWED, message, headline=f"not allowed: {message}", generation=generation)
    ctx.writer.condition(
        ConditionType.SPEC_APPLIED, False, found[0].reason, message, generation=generation
    )


def refuse_children(ctx: RunContext, exc: KubeError, generation: int) -> None:
    """The API server refused a child (bad resources, RBAC...): Failed, and say why."""
    message = f"the API server refused a load-pod child: {exc.status} {exc.reason}: {exc.message}"
    ctx.fail(REJECTED, message, generation=generation)
