"""Garbage collection: each node is sent, now and then, a filter of the pieces it should keep."""
