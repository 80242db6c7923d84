"""metadisk: decentralized, end-to-end encrypted object storage."""

__version__ = "0.1.0"
