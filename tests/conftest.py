"""Shared test plugins. The demo target server fixtures live in tests/servers_plugin.py."""

pytest_plugins = ["servers_plugin"]
