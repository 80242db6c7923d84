"""What every long-running metadisk process shares, whatever its role.

Chores (background loops), the lifecycle group that starts and stops a peer's services, binding
and announcing a listener, starting child processes (launchers), structured logs and Prometheus
metrics. Nothing here knows a role: the bridge, the bridge worker and the farmer build their peers
from these parts, and the launchers of local networks start them with them.
"""
