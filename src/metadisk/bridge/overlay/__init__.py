"""The node directory: farmers' check-ins, ping-backs, and node selection for pieces."""
