"""Graceful exit: leaving a bridge by moving its pieces to other nodes (`service`), and the
loopback route that starts it and shows how it goes (`endpoint`)."""
