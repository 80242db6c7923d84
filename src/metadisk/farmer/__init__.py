"""The farmer: a storage node that rents out disk (see docs/farmer.md).

`peer.Peer` is the process; `pieces` stores and serves pieces under order limits, `contact` checks
in with the bridges, `usage` keeps the counters, `launcher` starts real farmer processes for tests
and local networks. The farmer imports only `metadisk.core` of the other roles: it meets bridges
and clients on the wire.
"""
