"""Shared test plugins: the demo target server fixtures live in tests/kit/servers.py."""

pytest_plugins = ["kit.servers"]
