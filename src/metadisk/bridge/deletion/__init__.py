"""Deleting pieces from farmers: a queue of pending deletes per node, worked by a chore."""
