"""Experiments: a performance question turned into a measured A/B answer (see README.md)."""
