"""Helpers of the hostile-input and load suites: a real server process and loopback peers."""
