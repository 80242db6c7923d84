"""Garbage collection: the bridges' retain requests (Bloom filters of the pieces to keep)."""
