"""Repair: the checker finds piece sets with too few healthy pieces, the repairer rebuilds them."""
