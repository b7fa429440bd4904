"""Controller core: tick loop, rate split, plan push, stats pull and merge (no kopf here)."""

from kar98k.results import LiveStatus, RunSummary

from .core import Controller, StepMark, StepWindow
from .events import ControllerEvent
from .pods import PodEndpoint, PodSource

__all__ = [
    "Controller",
    "ControllerEvent",
    "LiveStatus",
    "PodEndpoint",
    "PodSource",
    "RunSummary",
    "StepMark",
    "StepWindow",
]
