"""The soak (bench/soak.py) in short: the same code for 75 s in 15 s windows.

Two load pods under the controller core (the `kar98k run` path) follow a curve with noise and
a spike (seed 7 puts one at ~32-57 s) against the bench counting server. Fewer checks than the
10-minute run: no RSS bound (a 15 s window still holds start-up allocation) and 2 % on the
rate instead of 1 % (a busy shared machine). Run the 10-minute soak by hand (see
docs/reliability.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_short_soak_holds_rate_and_descriptors(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(SOAK), "--duration", "75s", "--every", "15s",
         "--rate-tolerance", "0.02", "--rss-tolerance", "0", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )  # fmt: skip
    print(proc.stdout)
    doc = json.loads(out.read_text())
    samples = doc["samples"]
    assert len(samples) == 5, proc.stdout + proc.stderr[-2000:]
    assert any(s["spike_s"] > 0 for s in samples), "no spike in the run: the check saw none"
    # The controller's own books agree with the server: every request asked for was sent.
    assert doc["run"]["dropped"] == 0 and doc["run"]["errors_total"] == 0, doc["run"]
    # Drained, every pod is back to the descriptors it had before the run: nothing leaked.
    assert all(d <= i for d, i in zip(doc["drained_fds"], doc["idle_fds"], strict=True)), doc
    assert proc.returncode == 0, proc.stdout
    for s, ratio in zip(samples, doc["ratios"], strict=True):
        assert abs(ratio - 1) <= 0.02, s
