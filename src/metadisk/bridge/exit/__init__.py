"""Graceful exit: a leaving farmer moves its pieces to other nodes under signed order limits."""
