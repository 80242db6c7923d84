"""The supervisor's rules, on a stand-in network whose farmers the test kills and revives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from metadisk.devnet.network import LocalNetwork
from metadisk.devnet.supervisor import Backoff, Supervisor


def test_backoff_doubles_then_settles() -> None:
    backoff = Backoff(first=1, most=8, settle=60)
    assert [backoff.pause(up_for=0.5) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert backoff.pause(up_for=61) == 1  # it ran a while: crashes no longer look like a loop
    assert backoff.pause(up_for=0) == 2


@dataclass
class FakeFarmer:
    name: str
    running: bool = True
    returncode: int | None = None
    fail_starts: int = 0
    starts: int = 0
    pid: int = 100
    url: str = "http://127.0.0.1:7000"

    @property
    def data_dir(self) -> Path:
        return Path("/farmers") / self.name

    def die(self, status: int = -9) -> None:
        self.running, self.returncode = False, status


@dataclass
class FakeNetwork:
    farmers: list[FakeFarmer]
    bridge: Any = None
    worker: Any = None
    joining: list[FakeFarmer] = field(default_factory=list)

    async def restart_farmer(self, farmer: FakeFarmer) -> None:
        farmer.starts += 1
        if farmer.fail_starts:
            farmer.fail_starts -= 1
            raise RuntimeError("port 7000 on 127.0.0.1 is in use")
        farmer.running, farmer.returncode, farmer.pid = True, None, farmer.pid + 1

    async def adopt_farmers(self) -> list[FakeFarmer]:
        joined, self.joining = self.joining, []
        self.farmers.extend(joined)
        return joined


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    farmers: list[FakeFarmer], *, restart: bool = True
) -> tuple[Supervisor, FakeNetwork, Clock, list[str]]:
    network, clock, said = FakeNetwork(farmers), Clock(), []
    supervisor = Supervisor(cast(LocalNetwork, network), said.append, restart=restart, clock=clock)
    return supervisor, network, clock, said


async def test_an_exited_farmer_is_said_and_started_again_after_its_pause() -> None:
    one, two = FakeFarmer("farmer-01"), FakeFarmer("farmer-02")
    supervisor, _, clock, said = make([one, two])
    assert not await supervisor.check()
    two.die()
    assert await supervisor.check()
    assert said == ["farmer-02 exited (status -9); restarting in 1 s"]
    clock.now += 0.5
    await supervisor.check()
    assert two.starts == 0  # not before its pause
    clock.now += 0.6
    assert await supervisor.check()
    assert two.running and two.starts == 1 and one.starts == 0
    assert said[-1] == "farmer-02 is back at http://127.0.0.1:7000 (pid 101)"


async def test_a_farmer_that_keeps_failing_waits_longer_each_time() -> None:
    farmer = FakeFarmer("farmer-01", fail_starts=2)
    supervisor, _, clock, said = make([farmer])
    farmer.die(1)
    await supervisor.check()
    for _ in range(3):
        clock.now += 100
        await supervisor.check()
    assert said == [
        "farmer-01 exited (status 1); restarting in 1 s",
        "farmer-01 did not start (port 7000 on 127.0.0.1 is in use); trying again in 2 s",
        "farmer-01 did not start (port 7000 on 127.0.0.1 is in use); trying again in 4 s",
        "farmer-01 is back at http://127.0.0.1:7000 (pid 101)",
    ]


async def test_no_restart_says_so_once_and_leaves_it() -> None:
    farmer = FakeFarmer("farmer-01")
    supervisor, _, clock, said = make([farmer], restart=False)
    farmer.die()
    await supervisor.check()
    for _ in range(3):
        clock.now += 1000
        await supervisor.check()
    assert said == ["farmer-01 exited (status -9); not restarting (--no-restart)"]
    assert farmer.starts == 0


async def test_farmers_added_to_the_data_dir_are_taken_up_and_watched() -> None:
    supervisor, network, _, said = make([FakeFarmer("farmer-01")])
    newcomer = FakeFarmer("farmer-02", pid=300)
    network.joining.append(newcomer)
    assert await supervisor.check()
    assert said == ["farmer-02 joined at http://127.0.0.1:7000 (pid 300)"]
    newcomer.die()
    await supervisor.check()
    assert said[-1] == "farmer-02 exited (status -9); restarting in 1 s"
