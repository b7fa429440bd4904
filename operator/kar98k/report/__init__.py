"""Reports of a finished or interrupted run: `.json`, `.html`, `.xml` (JUnit), by extension.

Callers validate report paths with `check_report_path` before a run starts, so a typo in an
extension fails in a second, not after a thirty-minute run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from kar98k.results import RunSummary

from .html_report import render_html
from .json_report import render_json, report_dict
from .junit_report import render_junit
from .schema import SCHEMA_VERSION, report_schema

_RENDERERS: dict[str, Callable[[RunSummary], str]] = {
    ".json": render_json,
    ".html": render_html,
    ".htm": render_html,
    ".xml": render_junit,
}
SUPPORTED_EXTENSIONS = (".json", ".html", ".xml")


class ReportFormatError(ValueError):
    """The report path's extension names no known format."""


def check_report_path(path: Path) -> None:
    """Raise ReportFormatError unless the extension is .json, .html (.htm) or .xml."""
    _renderer(Path(path))


def render_report(summary: RunSummary, path: Path) -> str:
    """The report text for `path`'s format, without writing it."""
    return _renderer(Path(path))(summary)


def write_report(summary: RunSummary, path: Path) -> None:
    """Write the report atomically (temp file + rename): an interrupted write leaves no half file.

    Creates missing parent directories. Raises ReportFormatError for an unknown extension and
    OSError when the file cannot be written.
    """
    target = Path(path)
    content = _renderer(target)(summary)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _renderer(path: Path) -> Callable[[RunSummary], str]:
    renderer = _RENDERERS.get(path.suffix.lower())
    if renderer is None:
        raise ReportFormatError(
            f"{path}: unknown report format {path.suffix or '(no extension)'!r}; "
            f"use one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return renderer


__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_EXTENSIONS",
    "ReportFormatError",
    "check_report_path",
    "render_report",
    "report_dict",
    "report_schema",
    "write_report",
]
