"""A finished run's result, kept in the cluster: a ConfigMap owned by the LoadTest.

The data is `kar98k.report.stored.pack` of the run's summary (the JSON report, gzipped, the
series thinned to fit); `kar98k report NAMESPACE/NAME` reads it back and renders the same
reports a local run writes. One ConfigMap per run, named for the run's start, so a restarted
operator finishing the same run again finds it already stored (409) instead of a second copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kar98k.report.stored import DATA_KEY, FORMAT, pack
from kar98k.results import RunSummary
from kar98k.spec.status import parse_time

from . import names
from .children import owner_reference
from .kube import JSON, Conflict, Kube, path

ANNOTATION_STRIDE = "kar98k.dev/series-stride"
ANNOTATION_FORMAT = "kar98k.dev/format"


def result_name(loadtest: str, started_at: str) -> str:
    """`<loadtest>-result-<yyyymmddhhmmss>` of the run's t = 0 (UTC)."""
    start: datetime = parse_time(started_at)
    return f"{loadtest}-result-{start:%Y%m%d%H%M%S}"


def result_configmap(owner: Mapping[str, Any], summary: RunSummary) -> JSON:
    meta = owner["metadata"]
    packed = pack(summary)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": result_name(meta["name"], summary.started_at),
            "namespace": meta["namespace"],
            "labels": {
                names.LABEL_LOADTEST: meta["name"],
                names.LABEL_MANAGED_BY: names.MANAGER,
                names.LABEL_PART_OF: "kar98k",
            },
            "annotations": {
                ANNOTATION_FORMAT: FORMAT,
                ANNOTATION_STRIDE: str(packed.stride),
            },
            "ownerReferences": [owner_reference(owner)],
        },
        "binaryData": {DATA_KEY: packed.encoded()},
    }


async def store(kube: Kube, owner: Mapping[str, Any], summary: RunSummary) -> str:
    """Create the result ConfigMap (409: stored before a restart); its name."""
    body = result_configmap(owner, summary)
    namespace = body["metadata"]["namespace"]
    with contextlib.suppress(Conflict):
        await kube.create(path("v1", "configmaps", namespace=namespace), body)
    return str(body["metadata"]["name"])
