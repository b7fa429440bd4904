"""A run's result as stored in the cluster: the JSON report, gzipped, small enough for a
ConfigMap, and read back into the same RunSummary the local reports render.

A ConfigMap holds at most 1 MiB (all keys, base64 included). The packed report is kept under
`MAX_PACKED` bytes of gzip (base64 makes that ~4/3 larger, still far below the limit): when a long
run's per-second series does not fit, every other point is dropped (the stride doubles) until it
does. Everything else — totals, merged percentiles, per-target and per-pod figures, checks,
controller figures — is always kept whole; the stride is written next to the data.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass

from kar98k.results import RunSummary

from .json_report import render_json

DATA_KEY = "report.json.gz"
FORMAT = "kar98k-report+json+gzip"
MAX_PACKED = 400 * 1024
_MAX_STRIDE = 1 << 20


class StoredResultError(ValueError):
    """The stored data is not a kar98k result this version can read."""


@dataclass(frozen=True)
class Packed:
    data: bytes  # gzip of the JSON report
    stride: int  # 1: every series point kept; n: every n-th point
    points: int  # series points kept

    def encoded(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


def pack(summary: RunSummary, *, limit: int = MAX_PACKED) -> Packed:
    """The gzipped JSON report, its series thinned (stride 1, 2, 4, ...) until it fits."""
    stride = 1
    while True:
        series = summary.series[::stride]
        thinned = summary.model_copy(update={"series": series})
        data = gzip.compress(render_json(thinned).encode("utf-8"), mtime=0)
        if len(data) <= limit or not series:
            return Packed(data, stride, len(series))
        if stride >= _MAX_STRIDE:
            raise StoredResultError("the report does not fit even without its series")
        stride *= 2


def unpack(encoded: str | bytes) -> RunSummary:
    """The RunSummary of a stored result (base64 of the gzipped JSON report)."""
    try:
        raw = gzip.decompress(base64.b64decode(encoded, validate=True))
        document = json.loads(raw)
    except (ValueError, OSError, EOFError) as exc:
        raise StoredResultError(f"not a gzipped JSON report: {exc}") from None
    if not isinstance(document, dict):
        raise StoredResultError("the stored report is not a JSON object")
    document.pop("schema_version", None)
    try:
        return RunSummary.model_validate(document)
    except ValueError as exc:
        raise StoredResultError(f"the stored report does not match this version: {exc}") from None
