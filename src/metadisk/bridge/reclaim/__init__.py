"""Reclaiming uploads left uncommitted past their deadline (a bridge worker's chore)."""
