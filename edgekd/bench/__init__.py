"""Measure exported artifacts: on this host in clean subprocesses, predicted for a target,
or on a real device over ssh."""
