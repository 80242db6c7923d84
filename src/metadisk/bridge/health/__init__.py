"""Network health: audits, uptime checks, reputation, vetting and transfer performance."""
