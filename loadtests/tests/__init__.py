"""Tests of the load-test runner (see helpers.py for why runs are subprocesses)."""
