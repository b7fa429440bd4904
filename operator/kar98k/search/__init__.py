"""Capacity search: the highest rate a target sustains under this LoadTest's realistic curve.

`decide` (pure: the next rate from the outcomes so far), `judge` (pure: one step's window
against the LoadTest's thresholds), `engine` (drives a Controller through the steps). Shared by
`kar98k find-max` and the operator's `spec.search`.
"""
