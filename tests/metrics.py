"""Reading a peer's ``/metrics`` in tests: scrape, then sum the samples that match."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """One scrape's samples: (name, labels) -> value."""

    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, have), value in self.samples.items()
            if sample == name and wanted <= have
        )

    def __sub__(self, before: Scrape) -> Scrape:
        keys = set(self.samples) | set(before.samples)
        return Scrape({k: self.samples.get(k, 0.0) - before.samples.get(k, 0.0) for k in keys})

    def __add__(self, other: Scrape) -> Scrape:
        keys = set(self.samples) | set(other.samples)
        return Scrape({k: self.samples.get(k, 0.0) + other.samples.get(k, 0.0) for k in keys})


def scrape_sync(base_url: str) -> Scrape:
    with urllib.request.urlopen(base_url.rstrip("/") + "/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples)


async def scrape(base_url: str) -> Scrape:
    return await asyncio.to_thread(scrape_sync, base_url)


def summed(scrapes: list[Scrape]) -> Scrape:
    total = Scrape({})
    for each in scrapes:
        total = total + each
    return total
