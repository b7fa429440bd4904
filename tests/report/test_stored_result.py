"""A run's result as the operator stores it: gzip JSON report, capped, series thinned to fit."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
from kar98k.report import render_report
from kar98k.report.stored import MAX_PACKED, StoredResultError, pack, unpack
from kit.summaries import make_summary


def test_a_short_run_is_stored_whole_and_renders_the_same_reports() -> None:
    summary = make_summary(seconds=120)
    packed = pack(summary)
    assert packed.stride == 1 and packed.points == len(summary.series)
    back = unpack(packed.encoded())
    assert back == summary
    for suffix in (".json", ".html", ".xml"):
        path = Path(f"report{suffix}")
        assert render_report(back, path) == render_report(summary, path)


def test_a_long_run_thins_only_its_series_to_stay_far_below_a_configmaps_limit() -> None:
    summary = make_summary(seconds=12 * 3600)  # twelve hours of per-second points
    packed = pack(summary)
    # base64 of the gzip data is what the ConfigMap holds: well under 1 MiB.
    assert len(packed.encoded()) < 600 * 1024 and len(packed.data) <= MAX_PACKED
    assert packed.stride > 1 and packed.points == len(summary.series[:: packed.stride])
    back = unpack(packed.encoded())
    assert back.series == summary.series[:: packed.stride]
    # Everything but the series is kept whole.
    assert back.model_dump(exclude={"series"}) == summary.model_dump(exclude={"series"})


@pytest.mark.parametrize(
    "data",
    [
        "not base64!",
        base64.b64encode(b"not gzip").decode(),
        base64.b64encode(gzip.compress(b"[1, 2]")).decode(),
        base64.b64encode(gzip.compress(json.dumps({"name": 3}).encode())).decode(),
    ],
    ids=["base64", "gzip", "not-an-object", "wrong-shape"],
)
def test_garbage_is_a_clear_error_not_a_traceback(data: str) -> None:
    with pytest.raises(StoredResultError):
        unpack(data)
