"""Locust reference: FastHttpUser hammering '/' with no wait (closed loop per user)."""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class Hammer(FastHttpUser):
    wait_time = constant(0)

    @task
    def root(self) -> None:
        self.client.get("/")
