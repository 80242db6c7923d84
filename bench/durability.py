"""Durability of one segment under node churn and disk failures: loss per year ("nines") and repair
traffic per year, for the redundancy profiles and some alternatives, checked by a simulation.

A segment is Reed-Solomon coded k/m/o/n (`metadisk.core.erasure`): any k pieces rebuild it, an
upload keeps o pieces on o distinct nodes, and repair starts when the healthy pieces fall to m. A
repair completes a delay later (the time to consider a node gone, to queue the segment and to
move the pieces), downloads k pieces, uploads the o - h missing ones and puts the segment back at
o. The segment is lost if fewer than k pieces are left before then.

Model (per segment, exact): every piece fails independently at rate a = 1/L + d, L the mean node
lifetime (exponential) and d the disk failure rate. The healthy count is then a Markov chain that
starts afresh at o after each repair, so one cycle (o down to m, then the delay) gives the long
run exactly (renewal-reward): loss per year and repair traffic per year, for a fixed delay
(binomial: which of the m pieces outlive the delay) and for an exponential delay of the same mean
(a repairer whose delays have a long tail). The first year after an upload, from o, is the chain's
transient, computed exactly by uniformization (exponential delay).

Check: a discrete-event simulation of a network of thousands of nodes (each departs after its
lifetime or a disk failure and is replaced by an empty node) holding many segments on distinct
random nodes, run at a stress failure rate at which losses are seen, printed beside the model.

Rates: each is an assumption, for its order of magnitude, named with its source.

- node lifetime: 6 months mean, the middle of the mean times to failure (1, 6 and 12 months) in
  the decision table of Storj Labs, "Storj: A Decentralized Cloud Storage Network Framework", v3.0
  (October 2018), chapter 7, section "Choosing erasure parameters". Its section 2.5 ("Durability,
  device failure, and churn") expects churn, not hardware, to dominate losses and cites Rhea et
  al. (USENIX 2004) for P2P session times of hours or minutes; Blake and Rodrigues, "High
  Availability, Scalable Storage, Dynamic Peer Networks: Pick Two" (HotOS IX, 2003), argue from
  Gnutella measurements that with such churn the bandwidth to keep redundancy, not the disks,
  limits P2P storage. The alternatives take 1 and 12 months.
- disk failures: 1.6% a year, between the fleet-wide annualized failure rates in Backblaze's Drive
  Stats (1.57% for 2024, about 1.7% for 2023); disks at home may do worse.
- repair delay: 24 hours, an assumption (metadisk has no repairer yet): a node counted gone after
  about 12 hours offline, then queue and transfer. The alternatives take 4 and 72 hours.
- target: 11 nines a year, what Amazon S3 Standard is designed for ("99.999999999% durability
  ... of objects over a given year", S3 User Guide, "Data protection in Amazon S3"). An object of
  s segments has about log10(s) nines fewer than its segments.

Prints both tables and asserts nothing (docs/durability.md explains the figures).

    python bench/durability.py            # about a minute
    python bench/durability.py --quick    # about 10 seconds: a smoke run
    python bench/durability.py --lifetime-days 365 --delay-hours 4
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from metadisk.core.erasure import GLOBAL, LOCAL, RedundancyScheme

YEAR_DAYS = 365.25
HOURS_PER_YEAR = 24 * YEAR_DAYS
TARGET_NINES = 11.0  # Amazon S3 Standard's design target, per object per year
Z_AGREE = 3.0  # the simulation agrees if the model is within 3 standard errors


@dataclass(frozen=True)
class Failures:
    """What takes pieces away: nodes leaving (mean lifetime) and disks failing, independently."""

    lifetime_days: float  # mean time a node stays; math.inf: nodes never leave
    afr: float  # annualized disk failure rate

    @property
    def rate(self) -> float:
        """Failures per piece per year."""
        churn = 0.0 if math.isinf(self.lifetime_days) else YEAR_DAYS / self.lifetime_days
        return churn - math.log1p(-self.afr)  # an AFR is a probability; its rate is a bit higher


@dataclass(frozen=True)
class Scenario:
    label: str
    scheme: RedundancyScheme
    failures: Failures
    delay_hours: float

    @property
    def delay(self) -> float:
        """The repair delay in years."""
        return self.delay_hours / HOURS_PER_YEAR


@dataclass(frozen=True)
class Cycle:
    """One repair cycle: from o healthy pieces until a repair puts them back, or the loss."""

    loss: float  # probability that it ends in a loss
    years: float  # expected length
    traffic: float  # expected repair traffic, in segment sizes


@dataclass(frozen=True)
class Yearly:
    """Per segment per year."""

    loss: float  # probability of losing the segment within the year
    traffic: float  # repair traffic over the segment's size (bytes moved / bytes stored)
    repairs: float  # expected repairs


def nines(probability: float) -> float:
    """-log10 of a probability of loss: 0.999 kept is 3 nines."""
    return math.inf if probability <= 0 else -math.log10(probability)


def _check(scheme: RedundancyScheme) -> None:
    if scheme.m >= scheme.o:
        raise ValueError(f"{scheme}: the model needs m < o (a fresh upload is not due a repair)")


def repair_traffic(scheme: RedundancyScheme, healthy: int) -> float:
    """A repair's traffic in segment sizes: k pieces down, o - healthy up, each 1/k of a segment."""
    return (scheme.k + scheme.o - healthy) / scheme.k


def decay_years(scheme: RedundancyScheme, rate: float) -> float:
    """Expected time from o healthy pieces to m: one failure among h pieces takes 1/(h rate)."""
    return sum(1 / (h * rate) for h in range(scheme.m + 1, scheme.o + 1))


def _lost_by(scheme: RedundancyScheme, rate: float, t: float) -> float:
    """P(fewer than k of m pieces outlive t): a sum of positive terms, exact for tiny values."""
    alive = math.exp(-rate * t)
    dead = -math.expm1(-rate * t)
    m = scheme.m
    return sum(math.comb(m, h) * alive**h * dead ** (m - h) for h in range(scheme.k))


def cycle_fixed(scheme: RedundancyScheme, rate: float, delay: float) -> Cycle:
    """A cycle whose repair completes exactly `delay` years after the segment falls to m."""
    _check(scheme)
    alive, dead, m = math.exp(-rate * delay), -math.expm1(-rate * delay), scheme.m
    traffic = sum(
        math.comb(m, h) * alive**h * dead ** (m - h) * repair_traffic(scheme, h)
        for h in range(scheme.k, m + 1)
    )
    # A lost segment ends its cycle early: the time at risk is the integral of P(not lost yet).
    steps = 64  # Simpson's rule; the term is a small correction, and smooth
    width = delay / steps
    lost_time = sum(
        (1 if i in (0, steps) else 4 if i % 2 else 2) * _lost_by(scheme, rate, i * width)
        for i in range(steps + 1)
    )
    at_risk = delay - lost_time * width / 3
    return Cycle(_lost_by(scheme, rate, delay), decay_years(scheme, rate) + at_risk, traffic)


def cycle_exponential(scheme: RedundancyScheme, rate: float, delay: float) -> Cycle:
    """A cycle whose repair completes at rate 1/delay once the segment is at m or below."""
    _check(scheme)
    repair = 1 / delay
    reach, at_risk, traffic = 1.0, 0.0, 0.0  # reach: P(the segment gets down to h pieces)
    for h in range(scheme.m, scheme.k - 1, -1):
        out = h * rate + repair
        at_risk += reach / out
        traffic += reach * repair / out * repair_traffic(scheme, h)
        reach *= h * rate / out
    return Cycle(reach, decay_years(scheme, rate) + at_risk, traffic)


def long_run(cycle: Cycle) -> Yearly:
    """Per year, once a segment's repair cycles are in their steady state (renewal-reward)."""
    cycles = 1 / cycle.years
    # Losses come at a long-run rate; a segment survives a year with probability exp(-rate).
    return Yearly(
        -math.expm1(-cycle.loss * cycles), cycle.traffic * cycles, (1 - cycle.loss) * cycles
    )


def steady(scenario: Scenario, fixed: bool = True) -> Yearly:
    """The long run, with a fixed repair delay or an exponential one of the same mean."""
    rate = scenario.failures.rate
    if rate == 0:
        return Yearly(0.0, 0.0, 0.0)
    make = cycle_fixed if fixed else cycle_exponential
    return long_run(make(scenario.scheme, rate, scenario.delay))


def _chain(
    scheme: RedundancyScheme, rate: float, delay: float
) -> list[list[tuple[int, float, float]]]:
    """The CTMC with an exponential delay: each state's moves (target, rate, repair traffic).

    State i < o - m has o - i healthy pieces; state o - m + j is at m - j, due a repair; the last
    state is the loss, which absorbs. A repair moves back to state 0.
    """
    _check(scheme)
    k, m, o = scheme.k, scheme.m, scheme.o
    moves: list[list[tuple[int, float, float]]] = []
    for i, h in enumerate(range(o, m, -1)):
        moves.append([(i + 1, h * rate, 0.0)])
    for i, h in enumerate(range(m, k - 1, -1), start=o - m):
        moves.append([(i + 1, h * rate, 0.0), (0, 1 / delay, repair_traffic(scheme, h))])
    moves.append([])
    return moves


def transient(scenario: Scenario, years: float = 1.0, start: float = 0.0) -> Yearly:
    """Loss probability, repair traffic and repairs between `start` and `years` after an upload,
    with an exponential delay.

    Uniformization: with N a Poisson count of rate L (the fastest exit rate) and P = I + Q/L,
    p(t) = sum_j P(N_t = j) v P^j, and the time spent in each state up to t is
    sum_j P(N_t > j) v P^j / L. All terms are positive, so tiny probabilities keep their digits.
    """
    rate = scenario.failures.rate
    if rate == 0:
        return Yearly(0.0, 0.0, 0.0)
    moves = _chain(scenario.scheme, rate, scenario.delay)
    exits = [sum(r for _, r, _ in out) for out in moves]
    fastest = max(exits)
    stay = [1 - e / fastest for e in exits]
    flows = [[(t, r / fastest) for t, r, _ in out] for out in moves]
    repairs_at = [(s, r, c) for s, out in enumerate(moves) for _, r, c in out if c > 0]
    means = [fastest * start, fastest * years]
    last = int(means[1] + 12 * math.sqrt(means[1]) + 30)  # the Poisson tail past it is < 1e-30

    def weights(mean: float) -> tuple[list[float], list[float]]:
        """P(N = j) and P(N > j) for j up to `last`."""
        if mean == 0:
            return [1.0] + [0.0] * last, [0.0] * (last + 1)
        w = [math.exp(-mean + j * math.log(mean) - math.lgamma(j + 1)) for j in range(last + 1)]
        tail, above = [0.0] * (last + 1), 0.0
        for j in range(last, -1, -1):
            tail[j] = above
            above += w[j]
        return w, tail

    both = [weights(mean) for mean in means]
    loss, traffic, repairs = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
    v = [0.0] * len(moves)
    v[0] = 1.0
    for j in range(last + 1):
        moved = sum(v[s] * r * c for s, r, c in repairs_at)
        done = sum(v[s] * r for s, r, _ in repairs_at)
        for n, (w, tail) in enumerate(both):
            loss[n] += w[j] * v[-1]
            traffic[n] += tail[j] * moved
            repairs[n] += tail[j] * done
        nv = [x * s for x, s in zip(v, stay, strict=True)]
        for s, x in enumerate(v):
            if x:
                for t, p in flows[s]:
                    nv[t] += x * p
        v = nv
    return Yearly(
        loss[1] - loss[0], (traffic[1] - traffic[0]) / fastest, (repairs[1] - repairs[0]) / fastest
    )


# --- the simulation ---------------------------------------------------------------------------


@dataclass
class Simulated:
    """What a run of the network saw."""

    segments: int
    years: float
    warmup: float
    first_year_losses: int = 0  # uploads at time 0 lost within a year
    first_year_traffic: float = 0.0  # their repairs' traffic within that year, in segment sizes
    window_losses: int = 0  # losses after the warm-up (lost segments are uploaded again)
    window_traffic: float = 0.0

    def figures(self) -> dict[str, float]:
        """Per segment: P(loss) and traffic in the 1st year; loss rate and traffic a year later."""
        exposure = self.segments * (self.years - self.warmup)
        return {
            "loss, 1st year": self.first_year_losses / self.segments,
            "repair, 1st year": self.first_year_traffic / self.segments,
            "loss rate, long run": self.window_losses / exposure,
            "repair/yr, long run": self.window_traffic / exposure,
        }


def simulate(
    scenario: Scenario,
    *,
    nodes: int,
    segments: int,
    years: float = 1.5,
    warmup: float = 0.5,
    fixed: bool = True,
    shape: float = 1.0,
    seed: int = 1,
) -> Simulated:
    """A network of `nodes` nodes holding `segments` segments, each on o distinct random nodes.

    Each node leaves after its lifetime (exponential, or Weibull of `shape` with the same mean) or
    when its disk fails, whichever comes first, and an empty node takes its place. A segment that
    falls to m is repaired `delay` later (fixed, or exponential) onto random nodes it is not on; a
    lost segment is uploaded again, so the population stays the same for the long-run window.
    """
    if nodes < scenario.scheme.o:
        raise ValueError("the network needs at least o nodes")
    rng = random.Random(seed)
    k, m, o = scenario.scheme.k, scenario.scheme.m, scenario.scheme.o
    failures = scenario.failures
    churn = 0.0 if math.isinf(failures.lifetime_days) else YEAR_DAYS / failures.lifetime_days
    disk = -math.log1p(-failures.afr)
    scale = 1 / churn / math.gamma(1 + 1 / shape) if churn else math.inf
    delay = scenario.delay

    def lifetime(first: bool) -> float:
        if not churn:
            leave = math.inf
        elif shape == 1.0:
            leave = rng.expovariate(churn)
        elif first:  # the node is mid-life: residual life of a length-biased Weibull lifetime
            leave = rng.random() * scale * rng.gammavariate(1 + 1 / shape, 1.0) ** (1 / shape)
        else:
            leave = rng.weibullvariate(scale, shape)
        return min(leave, rng.expovariate(disk) if disk else math.inf)

    holds: list[set[int]] = [set() for _ in range(nodes)]
    placed: list[set[int]] = [set() for _ in range(segments)]
    generation = [0] * segments
    pending = [False] * segments
    queue: list[tuple[float, int, int, int]] = [(lifetime(True), 0, n, 0) for n in range(nodes)]
    heapq.heapify(queue)
    result = Simulated(segments, years, warmup)

    def upload(seg: int) -> None:
        chosen = set(rng.sample(range(nodes), o))
        placed[seg] = chosen
        for n in chosen:
            holds[n].add(seg)

    for seg in range(segments):
        upload(seg)
    while queue and queue[0][0] <= years:
        now, kind, ident, gen = heapq.heappop(queue)
        if kind == 0:  # a node leaves with its pieces; an empty one takes its slot
            held, holds[ident] = holds[ident], set()
            for seg in held:
                pieces = placed[seg]
                pieces.discard(ident)
                if len(pieces) < k:
                    if generation[seg] == 0 and now <= 1.0:
                        result.first_year_losses += 1
                    if now >= warmup:
                        result.window_losses += 1
                    for n in pieces:
                        holds[n].discard(seg)
                    generation[seg] += 1
                    pending[seg] = False
                    upload(seg)
                elif len(pieces) <= m and not pending[seg]:
                    pending[seg] = True
                    wait = delay if fixed else rng.expovariate(1 / delay)
                    heapq.heappush(queue, (now + wait, 1, seg, generation[seg]))
            heapq.heappush(queue, (now + lifetime(False), 0, ident, 0))
        elif gen == generation[ident]:  # a repair completes (unless the segment was lost)
            pieces = placed[ident]
            cost = repair_traffic(scenario.scheme, len(pieces))
            if gen == 0 and now <= 1.0:
                result.first_year_traffic += cost
            if now >= warmup:
                result.window_traffic += cost
            while len(pieces) < o:
                n = rng.randrange(nodes)
                if n not in pieces:
                    pieces.add(n)
                    holds[n].add(ident)
            pending[ident] = False
    return result


# --- the report -------------------------------------------------------------------------------


def scenarios(lifetime_days: float, afr: float, delay_hours: float) -> list[Scenario]:
    """The profiles and the alternatives the table weighs them against."""
    base, life = Failures(lifetime_days, afr), lifetime_days
    local = Scenario("local", LOCAL, base, delay_hours)
    world = Scenario("global", GLOBAL, base, delay_hours)

    return [
        local,
        replace(local, label="local, repair at 5", scheme=replace(LOCAL, m=5)),
        replace(local, label="local, repair at 7", scheme=replace(LOCAL, m=7)),
        replace(local, label="local, delay x3", delay_hours=3 * delay_hours),
        world,
        replace(world, label="global, repair at 32", scheme=replace(GLOBAL, m=32)),
        replace(world, label="global, repair at 40", scheme=replace(GLOBAL, m=40)),
        replace(world, label="global, repair at 45", scheme=replace(GLOBAL, m=45)),
        replace(world, label="global, keep 65", scheme=replace(GLOBAL, o=65)),
        replace(world, label="global, delay / 6", delay_hours=delay_hours / 6),
        replace(world, label="global, delay x3", delay_hours=3 * delay_hours),
        replace(world, label="global, life x2", failures=replace(base, lifetime_days=2 * life)),
        replace(world, label="global, life / 6", failures=replace(base, lifetime_days=life / 6)),
    ]


def _days(days: float) -> str:
    return "inf" if math.isinf(days) else f"{days:.0f} d"


def _nines(probability: float) -> str:
    value = nines(probability)
    return "inf" if math.isinf(value) else f"{value:.1f}"


def print_model(rows: Sequence[Scenario]) -> None:
    print("Per segment per year, long run (a segment's repair cycles in their steady state)")
    head = f"{'scenario':<22}{'k/m/o/n':>12}{'o/k':>6}{'life':>8}{'delay':>8}"
    print(f"{head}{'nines':>8}{'exp.':>7}{'repair':>9}{'repairs':>9}  >= {TARGET_NINES:.0f} nines")
    for row in rows:
        fixed, tail = steady(row, fixed=True), steady(row, fixed=False)
        verdict = "yes" if nines(fixed.loss) >= TARGET_NINES else "NO"
        print(
            f"{row.label:<22}{row.scheme!s:>12}{row.scheme.expansion:>6.2f}"
            f"{_days(row.failures.lifetime_days):>8}{row.delay_hours:>6.0f} h"
            f"{_nines(fixed.loss):>8}{_nines(tail.loss):>7}{fixed.traffic:>8.2f}x"
            f"{fixed.repairs:>9.2f}  {verdict}"
        )
    print(
        "nines: -log10 P(loss in a year), delay fixed; exp.: the same with an exponential delay\n"
        "of the same mean; repair: bytes moved by repair a year / bytes of the segment (k pieces\n"
        "down, o - healthy up); repairs: repairs a year. Both with the fixed delay."
    )


@dataclass(frozen=True)
class Check:
    """One figure of a simulated case: the model's, the replicas' mean and its standard error."""

    quantity: str
    model: float
    seen: float
    error: float

    @property
    def z(self) -> float:
        if self.error == 0:
            return 0.0 if self.seen == self.model else math.inf
        return (self.seen - self.model) / self.error


def check_case(
    scenario: Scenario,
    *,
    fixed: bool,
    nodes: int,
    segments: int,
    replicas: int,
    warmup: float,
    shape: float = 1.0,
    seed: int = 1,
) -> list[Check]:
    """Simulate `replicas` independent networks and set their figures beside the model's.

    Replicas, not segments, are the samples: segments share nodes, so one node leaving moves many
    of them at once, and their spread would understate the error.
    """
    runs = [
        simulate(
            scenario,
            nodes=nodes,
            segments=segments,
            years=warmup + 1,
            warmup=warmup,
            fixed=fixed,
            shape=shape,
            seed=seed + i,
        ).figures()
        for i in range(replicas)
    ]
    model = steady(scenario, fixed)
    expected = {
        "loss rate, long run": -math.log1p(-model.loss),
        "repair/yr, long run": model.traffic,
    }
    if not fixed:  # the transient is exact for an exponential delay only
        first = transient(scenario, 1.0)
        expected = {"loss, 1st year": first.loss, "repair, 1st year": first.traffic, **expected}
    checks = []
    for quantity, value in expected.items():
        seen = [run[quantity] for run in runs]
        error = statistics.stdev(seen) / math.sqrt(replicas)
        checks.append(Check(quantity, value, statistics.fmean(seen), error))
    return checks


def print_check(args: argparse.Namespace) -> None:
    stress = Failures(args.stress_lifetime_days, args.afr)
    cases = [
        (Scenario("global", GLOBAL, stress, args.stress_delay_hours), True, 1.0),
        (Scenario("global", GLOBAL, stress, args.stress_delay_hours), False, 1.0),
        (Scenario("local", LOCAL, stress, args.stress_delay_hours), True, 1.0),
        (Scenario("local", LOCAL, stress, args.stress_delay_hours), False, 1.0),
    ]
    if not args.quick:  # what exponential lifetimes leave out: the model is not expected to agree
        cases.append((Scenario("global", GLOBAL, stress, args.stress_delay_hours), True, 0.5))
    print()
    print(
        f"Check at a stress failure rate: node lifetime {args.stress_lifetime_days:g} d, "
        f"repair delay {args.stress_delay_hours:g} h.\nEach case: {args.replicas} simulated "
        f"networks of {args.nodes} nodes holding {args.pieces // args.replicas} pieces; 1st year: "
        f"from the upload;\nlong run: the year after {args.warmup:g} y, lost segments uploaded "
        "again."
    )
    head = f"{'case':<48}{'quantity':<21}{'model':>10}{'simulated':>20}{'z':>6}"
    print(f"{head}  |z| <= {Z_AGREE:g}")
    for scenario, fixed, shape in cases:
        segments = max(2, args.pieces // (scenario.scheme.o * args.replicas))
        started = time.perf_counter()
        checks = check_case(
            scenario,
            fixed=fixed,
            nodes=args.nodes,
            segments=segments,
            replicas=args.replicas,
            warmup=args.warmup,
            shape=shape,
            seed=args.seed,
        )
        took = time.perf_counter() - started
        lives = "exponential" if shape == 1.0 else f"Weibull {shape:g}"
        labels = [
            f"{scenario.label} {scenario.scheme}, {'fixed' if fixed else 'exp.'} delay",
            f"  {lives} lives; {segments} x {args.replicas} segments, {took:.0f} s",
        ]
        for n, c in enumerate(checks):
            label = labels[n] if n < len(labels) else ""
            seen = f"{c.seen:.4f} +- {c.error:.4f}"
            if shape == 1.0:
                verdict = f"{c.z:>6.1f}  {'yes' if abs(c.z) <= Z_AGREE else 'NO'}"
            else:  # the model assumes exponential lives: this row shows what that leaves out
                verdict = f"{'-':>6}  (not exp.)"
            print(f"{label:<48}{c.quantity:<21}{c.model:>10.4f}{seen:>20}{verdict}")
    print(
        "loss, 1st year: P(an upload is lost within a year); loss rate: losses per segment-year;\n"
        "repair: traffic over the segment's size; +-: standard error over the networks. Model:\n"
        "renewal (long run) and uniformization (1st year, exponential delay), as in the table."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: a smaller simulation")
    parser.add_argument(
        "--lifetime-days",
        type=float,
        default=YEAR_DAYS / 2,
        help="mean node lifetime (default 183: six months)",
    )
    parser.add_argument(
        "--afr", type=float, default=0.016, help="annualized disk failure rate (default 0.016)"
    )
    parser.add_argument(
        "--delay-hours",
        type=float,
        default=24.0,
        help="repair delay: detection, queue and transfer (default 24)",
    )
    parser.add_argument("--nodes", type=int, help="simulated nodes (default 5000, quick 2000)")
    parser.add_argument(
        "--pieces", type=int, help="pieces per simulated case (default 480000, quick 40000)"
    )
    parser.add_argument(
        "--stress-lifetime-days",
        type=float,
        default=14.0,
        help="node lifetime in the simulation check (default 14)",
    )
    parser.add_argument("--stress-delay-hours", type=float, default=24.0)
    parser.add_argument(
        "--replicas", type=int, help="independent networks per case (default 16, quick 8)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.5,
        help="years simulated before the long-run year (default 0.5)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-check", action="store_true", help="skip the simulation")
    args = parser.parse_args(argv)
    args.nodes = args.nodes or (2000 if args.quick else 5000)
    args.pieces = args.pieces or (40_000 if args.quick else 480_000)
    args.replicas = args.replicas or (8 if args.quick else 16)
    if args.replicas < 2:
        parser.error("--replicas: at least 2 (their spread is the standard error)")
    failures = Failures(args.lifetime_days, args.afr)
    print(
        f"metadisk durability model: node lifetime {args.lifetime_days:.0f} d (exponential), "
        f"disk AFR {args.afr:.2%}, repair delay {args.delay_hours:g} h "
        f"(piece failure rate {failures.rate:.2f}/y)"
    )
    print()
    print_model(scenarios(args.lifetime_days, args.afr, args.delay_hours))
    if not args.no_check:
        print_check(args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
