"""Controller core: tick loop, rate split, plan push, stats pull and merge (no kopf here)."""

from .core import Controller
from .events import ControllerEvent
from .pods import PodEndpoint, PodSource
from .summary import LiveStatus, RunSummary

__all__ = ["Controller", "ControllerEvent", "LiveStatus", "PodEndpoint", "PodSource", "RunSummary"]
