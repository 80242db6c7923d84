"""Usage accounting: bytes stored and bandwidth per bridge, kept across restarts."""
