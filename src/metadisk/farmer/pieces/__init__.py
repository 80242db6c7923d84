"""The piece store: pieces on local disk, served to holders of valid order limits."""
