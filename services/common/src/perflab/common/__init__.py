"""Shared building blocks of the perflab services."""
