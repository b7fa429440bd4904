"""LoadTest manifests for tests, and checks on the processes a local run starts."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

PID_LINE = re.compile(r"^(pod-\d+) pid (\d+) at (http://127\.0\.0\.1:\d+)$", re.MULTILINE)


def manifest(url: str, name: str = "local-test", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "targets": [{"name": "fast", "url": url}],
        "pattern": {"baseTPS": 100},
        "duration": "3s",
    }
    body.update(spec)
    return {
        "apiVersion": "kar98k.dev/v1alpha1",
        "kind": "LoadTest",
        "metadata": {"name": name},
        "spec": body,
    }


def write_manifest(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def alive(pid: int) -> bool:
    """Running (or stopped) but not a zombie and not gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pod_pids(text: str) -> list[int]:
    return [int(m.group(2)) for m in PID_LINE.finditer(text)]


def kar98k_command() -> list[str]:
    script = Path(sys.executable).parent / "kar98k"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kar98k.cli"]
