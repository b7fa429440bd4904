"""The wire written once: paths under the authenticated prefix, bodies through the models."""

from __future__ import annotations

import json

from kar98k_loadpod.client import encode_plan
from kar98k_loadpod.plan import Plan
from kar98k_loadpod.protocol import API_PREFIX, DRAIN_PATH, PLAN_PATH, STATS_PATH, DrainRequest
from kit.loadpod import plan, target


def test_every_control_path_is_under_the_token_prefix() -> None:
    for path in (PLAN_PATH, STATS_PATH, DRAIN_PATH):
        assert path.startswith(API_PREFIX + "/")


def test_a_plan_round_trips_through_its_wire_form() -> None:
    sent = plan([target("t", "http://127.0.0.1:9/", weight=2)], epoch=3, rate=12.5, seed=None)
    wire = json.loads(encode_plan(sent))
    assert {"leaseSeconds", "maxInFlight"} <= wire.keys()  # camelCase from the aliases
    assert "seed" not in wire  # unset optional fields stay off the wire
    assert Plan.model_validate(wire) == sent
    assert DrainRequest(timeout_seconds=2).to_wire() == {"timeoutSeconds": 2.0}
