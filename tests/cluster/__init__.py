"""The test cluster: a real Kubernetes control plane on loopback and a node agent for its pods.

See docs/testing.md. `python -m cluster up` (with tests/ on PYTHONPATH) starts one for a session by
hand; the operator suite starts its own through the fixtures in tests/operator/conftest.py.
"""
