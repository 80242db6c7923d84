"""Keeping a local network's farmers running: notice one that exited, say so, start it again
after a growing pause (so that a farmer that cannot start does not spin), and take up farmers
added to the data dir by another process.

`Backoff` is the waiting rule, without I/O; `Supervisor.check` is one look at the network, which
`metadisk up` calls every half second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from metadisk.devnet.farmer import FarmerProcess
from metadisk.devnet.network import LocalNetwork, NetworkError


@dataclass
class Backoff:
    """Pauses before restarts: `first`, doubling up to `most`; back to `first` once a process
    stayed up for `settle` seconds."""

    first: float = 1.0
    most: float = 60.0
    settle: float = 60.0
    _next: float = field(default=0.0, init=False)

    def pause(self, up_for: float) -> float:
        """The pause before the next start of a process that ran `up_for` seconds."""
        if up_for >= self.settle or self._next == 0.0:
            self._next = self.first
        else:
            self._next = min(self.most, self._next * 2)
        return self._next


@dataclass
class _Watched:
    farmer: FarmerProcess
    backoff: Backoff = field(default_factory=Backoff)
    started_at: float = 0.0
    restart_at: float | None = None  # when it exited: when to start it again


class Supervisor:
    """Restarts `network`'s farmers when they exit (unless `restart` is off); `say` tells the
    person watching what happened, one line at a time."""

    def __init__(
        self,
        network: LocalNetwork,
        say: Callable[[str], None],
        *,
        restart: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._network = network
        self._say = say
        self._restart = restart
        self._clock = clock
        self._watched: dict[str, _Watched] = {}
        self.track(network.farmers)

    def track(self, farmers: list[FarmerProcess]) -> None:
        now = self._clock()
        for farmer in farmers:
            self._watched.setdefault(farmer.data_dir.name, _Watched(farmer, started_at=now))

    def bridge_exited(self) -> str | None:
        """Why the network cannot go on (its bridge or worker exited), or None."""
        for process in (self._network.bridge, self._network.worker):
            if process is not None and not process.running:
                return (
                    f"the bridge's {process.role} process exited (status {process.returncode}); "
                    f"see {process.log_path}"
                )
        return None

    async def check(self) -> bool:
        """One look: report exits, restart what is due, take up new farmers. Whether anything
        changed (so that the caller rewrites what it publishes about the processes)."""
        changed = False
        now = self._clock()
        self.track(self._network.farmers)  # including any whose first start failed
        for name, watched in self._watched.items():
            farmer = watched.farmer
            if watched.restart_at is None and not farmer.running:
                changed = True
                status = farmer.returncode
                if not self._restart:
                    watched.restart_at = float("inf")
                    self._say(f"{name} exited (status {status}); not restarting (--no-restart)")
                    continue
                pause = watched.backoff.pause(now - watched.started_at)
                watched.restart_at = now + pause
                self._say(f"{name} exited (status {status}); restarting in {pause:.0f} s")
            elif watched.restart_at is not None and watched.restart_at <= now:
                changed = True
                watched.started_at = now
                try:
                    await self._network.restart_farmer(farmer)
                except Exception as exc:
                    pause = watched.backoff.pause(0.0)
                    watched.restart_at = self._clock() + pause
                    self._say(f"{name} did not start ({exc}); trying again in {pause:.0f} s")
                    continue
                watched.restart_at = None
                self._say(f"{name} is back at {farmer.url} (pid {farmer.pid})")
        try:
            joined = await self._network.adopt_farmers()
        except NetworkError as exc:
            self._say(f"new farmers did not come online: {exc}")
            joined = []
        if joined:
            changed = True
            self.track(joined)
            for farmer in joined:
                self._say(f"{farmer.data_dir.name} joined at {farmer.url} (pid {farmer.pid})")
        return changed
