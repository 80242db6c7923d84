"""Buckets: named containers of a project, each with its redundancy profile."""
