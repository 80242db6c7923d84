"""Objects and segments: the map from encrypted keys to pieces on farmers."""
