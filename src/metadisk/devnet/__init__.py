"""Networks of real metadisk processes on one machine: for `metadisk up`, tests and benchmarks.

Each role's process is started by its launcher (`bridge.BridgeProcess`, `farmer.FarmerProcess`)
as the operator's command would start it (``metadisk bridge run``, ``metadisk farmer run``), on
`metadisk.runtime.process.ChildProcess`; `network.LocalNetwork` lays out a data dir with a
bridge and N farmers and wires them together; `postgres` makes throwaway PostgreSQL databases.
Nothing here is imported by a role: it sits above them, beside the CLI.
"""
