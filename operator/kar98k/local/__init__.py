"""The local runner: `kar98k run` drives N load-pod processes on this machine (no cluster)."""

from .processes import LocalPods, PodStartError
from .runner import run_local

__all__ = ["LocalPods", "PodStartError", "run_local"]
