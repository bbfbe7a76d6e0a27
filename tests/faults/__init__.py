"""Fault tests: workers and servers killed, shut down, timed out and cancelled mid-task."""
