"""The farmer's web dashboard: the operator's view of one node, on its own loopback listener.

One read-only page (``/``): space allocated, used, free and in the trash, the piece count,
bandwidth per day (an SVG chart and a table), the node's standing at each trusted bridge (asked of
the bridges, cached for `standing.CACHE_SECONDS`), its identity, address and last check-ins, and
its recent warnings and errors. A small script refreshes the figures in place.

It is served apart from the data plane (``[dashboard]`` in farmer.toml, loopback only) and
refuses any request whose Host or Origin is not this loopback listener (a DNS-rebinding page
cannot read it). Nothing on it changes state, so it needs no session or CSRF token.
"""

from metadisk.farmer.dashboard.server import Dashboard

__all__ = ["Dashboard"]
