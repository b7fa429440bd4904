"""Operator-wide guardrails: where a LoadTest may send traffic and how much (chart values).

Whoever may create a LoadTest may make the operator's pods send traffic; these are the
cluster admin's limits on that, checked before any pod exists and on every mid-run edit:

- `allowedTargets`: host globs (`*.svc.cluster.local`) and CIDRs (`10.0.0.0/8`). A target's
  host must match one. Names are matched as text and never resolved: a resolution here could
  differ from the pods' own a moment later, so a CIDR admits IP-literal URLs only.
- `maxTotalTPS`: no LoadTest whose ceiling (pattern.maxTPS, default 10 x baseTPS) exceeds it;
  at run time `budget.TpsBudget` keeps the running tests' sum under it.

Each refusal names the spec field at fault, as the model's own errors do.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from kar98k.spec import LoadTestSpec

TARGET_NOT_ALLOWED = "TargetNotAllowed"
ABOVE_MAX_TOTAL_TPS = "AboveMaxTotalTPS"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Refusal:
    """One guardrail a spec breaks: the condition reason and a message naming the field."""

    reason: str
    message: str


@dataclass(frozen=True)
class TargetAllowlist:
    """Host globs and networks; empty allows every host (the default: no allowlist)."""

    globs: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TargetAllowlist:
        """Entries with a '/' that parse as a network are CIDRs; anything else is a glob.
        Raises ValueError for an entry that is neither (an empty one, or a bad CIDR)."""
        globs: list[str] = []
        networks: list[Network] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError as exc:
                    raise ValueError(f"allowedTargets: {raw!r} is not a CIDR: {exc}") from None
            else:
                globs.append(entry)
        return cls(tuple(globs), tuple(networks))

    @property
    def empty(self) -> bool:
        return not self.globs and not self.networks

    def allows(self, host: str) -> bool:
        if self.empty:
            return True
        host = host.lower().rstrip(".")
        if any(fnmatch.fnmatchcase(host, glob) for glob in self.globs):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False  # a name: never resolved, so no CIDR can admit it
        return any(address in network for network in self.networks)

    def describe(self) -> str:
        return ", ".join([*self.globs, *(str(n) for n in self.networks)])


def target_refusals(spec: LoadTestSpec, allow: TargetAllowlist) -> list[Refusal]:
    """A refusal per target whose host the allowlist does not admit."""
    out: list[Refusal] = []
    for index, target in enumerate(spec.targets):
        host = urlsplit(target.url).hostname or ""
        if not allow.allows(host):
            out.append(
                Refusal(
                    TARGET_NOT_ALLOWED,
                    f"spec.targets[{index}].url: host {host!r} is not in the operator's "
                    f"allowedTargets ({allow.describe()})",
                )
            )
    return out


def tps_refusal(spec: LoadTestSpec, max_total_tps: float | None) -> Refusal | None:
    """A refusal when the spec's ceiling is above the operator's total (None: no total)."""
    if max_total_tps is None:
        return None
    ceiling = spec.pattern.ceiling
    if ceiling <= max_total_tps:
        return None
    given = "" if spec.pattern.max_tps is not None else " (absent: 10 x baseTPS)"
    return Refusal(
        ABOVE_MAX_TOTAL_TPS,
        f"spec.pattern.maxTPS: {ceiling:g} req/s{given} is above the operator's "
        f"maxTotalTPS {max_total_tps:g}; set spec.pattern.maxTPS at most that",
    )


def refusals(
    spec: LoadTestSpec, allow: TargetAllowlist, max_total_tps: float | None
) -> list[Refusal]:
    """Every guardrail `spec` breaks, targets first."""
    out = target_refusals(spec, allow)
    tps = tps_refusal(spec, max_total_tps)
    if tps is not None:
        out.append(tps)
    return out
