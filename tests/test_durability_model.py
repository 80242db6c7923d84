"""The durability model of `bench/durability.py` (docs/durability.md): right by hand where a case
is small enough, monotone where it must be, its two methods agreeing, and its simulated network
agreeing with it at a failure rate where losses are seen.

bench/ is not a package, so the script is loaded from its path.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from metadisk.core.erasure import GLOBAL, LOCAL, RedundancyScheme

BENCH = Path(__file__).resolve().parent.parent / "bench" / "durability.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_durability", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


durability = _load()
Failures, Scenario = durability.Failures, durability.Scenario
SIX_MONTHS = 365.25 / 2


def scenario(
    scheme: RedundancyScheme, lifetime_days: float = SIX_MONTHS, delay_hours: float = 24
) -> Any:  # a Scenario of the loaded script
    return Scenario("test", scheme, Failures(lifetime_days, 0.016), delay_hours)


def test_without_failures_nothing_is_lost_or_repaired() -> None:
    still = Scenario("still", GLOBAL, Failures(math.inf, 0.0), 24.0)
    zero = durability.Yearly(0.0, 0.0, 0.0)
    assert durability.steady(still, fixed=True) == zero
    assert durability.steady(still, fixed=False) == zero
    assert durability.transient(still, 1.0) == zero
    sim = durability.simulate(still, nodes=100, segments=20, years=1.5, warmup=0.5)
    assert (sim.first_year_losses, sim.window_losses, sim.window_traffic) == (0, 0, 0.0)


def test_one_piece_left_matches_the_hand_computation() -> None:
    # 1/1/2/2: two copies, repair when one is left; lost if it dies before the repair.
    scheme = RedundancyScheme(1, 1, 2, 2)
    a, d = 3.0, 0.01  # failures per piece per year; delay in years
    fixed = durability.cycle_fixed(scheme, a, d)
    assert fixed.loss == pytest.approx(1 - math.exp(-a * d), rel=1e-12)
    assert fixed.years == pytest.approx(1 / (2 * a) + (1 - math.exp(-a * d)) / a, rel=1e-9)
    assert fixed.traffic == pytest.approx(2 * math.exp(-a * d), rel=1e-12)  # 1 down, 1 up
    g = 1 / d
    exp = durability.cycle_exponential(scheme, a, d)
    assert exp.loss == pytest.approx(a / (a + g), rel=1e-12)
    assert exp.years == pytest.approx(1 / (2 * a) + 1 / (a + g), rel=1e-12)
    assert exp.traffic == pytest.approx(2 * g / (a + g), rel=1e-12)


@pytest.mark.parametrize("fixed", [True, False])
def test_repairing_earlier_loses_less_and_moves_more(fixed: bool) -> None:
    for base, thresholds in ((GLOBAL, range(29, 60)), (LOCAL, range(4, 8))):
        years = [
            durability.steady(scenario(RedundancyScheme(base.k, m, base.o, base.n)), fixed)
            for m in thresholds
        ]
        nines = [durability.nines(y.loss) for y in years]
        assert nines == sorted(nines) and len(set(nines)) == len(nines)
        traffic = [y.traffic for y in years]
        assert traffic == sorted(traffic)


def test_churn_and_slow_repairs_cost_nines() -> None:
    def nines(**change: float) -> float:
        return float(durability.nines(durability.steady(scenario(GLOBAL, **change)).loss))

    assert nines(lifetime_days=30) < nines() < nines(lifetime_days=365)
    assert nines(delay_hours=72) < nines() < nines(delay_hours=4)
    # A delay of the same mean but a long tail (exponential) costs nines too.
    assert (
        durability.steady(scenario(GLOBAL), fixed=False).loss
        > durability.steady(scenario(GLOBAL), fixed=True).loss
    )


@pytest.mark.parametrize("scheme", [GLOBAL, LOCAL])
def test_renewal_and_uniformization_agree_in_the_long_run(scheme: RedundancyScheme) -> None:
    # Two computations of the same chain: one cycle (renewal) against the transient's tenth year.
    # They differ by the segments the transient lost in nine years (0.1% for LOCAL).
    late = durability.transient(scenario(scheme), 10.0, start=9.0)
    steady = durability.steady(scenario(scheme), fixed=False)
    assert late.loss == pytest.approx(steady.loss, rel=2e-3)
    assert late.traffic == pytest.approx(steady.traffic, rel=2e-3)
    assert late.repairs == pytest.approx(steady.repairs, rel=2e-3)


@pytest.mark.parametrize(("scheme", "fixed", "segments"), [(LOCAL, False, 125), (GLOBAL, True, 40)])
def test_simulated_network_agrees_with_the_model(
    scheme: RedundancyScheme, fixed: bool, segments: int
) -> None:
    stress = scenario(scheme, lifetime_days=14)  # losses are common: 0.26 to 0.74 a year
    checks = durability.check_case(
        stress, fixed=fixed, nodes=300, segments=segments, replicas=8, warmup=0.5, seed=7
    )
    assert len(checks) == (2 if fixed else 4)
    for check in checks:
        assert abs(check.z) <= 4, check
        # Losses are counted in the hundreds, repairs in the tens of thousands.
        rel = 0.25 if check.quantity.startswith("loss") else 0.03
        assert check.seen == pytest.approx(check.model, rel=rel), check


def test_quick_report_prints_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    durability.main(["--quick", "--nodes", "200", "--pieces", "2000", "--replicas", "2"])
    out = capsys.readouterr().out
    for row in durability.scenarios(SIX_MONTHS, 0.016, 24.0):
        assert f"\n{row.label} " in out
    assert out.count("long run") >= 8  # both long-run figures of each of the four checked cases
