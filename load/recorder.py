"""Exact latency recording: every request's own timing in HDR histograms, errors by kind, throughput per second.

A Recorder lives in each Locust process. Its payload (plain JSON with base64 HDR histograms) is what a worker
sends to the master and what the master (or a lone process) writes for `python -m load run`; payloads merge
exactly, because HDR histograms add bucket by bucket.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

UNIT = "us"  # histograms count microseconds: Locust's own timer resolution is far finer, a µs is plenty
LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: beyond any client timeout, so every answer fits without clipping
DIGITS = 3  # 3 significant digits: every percentile is within 0.1% of the exact sample value
SERIES_DIGITS = 2  # per-second histograms only feed plots and step windows; 1% is plenty and 8x smaller
PAYLOAD_VERSION = 1
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    """An empty latency histogram in microseconds."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def encode(histogram: HdrHistogram) -> str:
    """hdrhistogram's own base64 V2 encoding, as text."""
    raw = histogram.encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)


def decode(text: str) -> HdrHistogram:
    """A histogram from its base64 encoding."""
    return HdrHistogram.decode(text)


def to_us(ms: float) -> int:
    """Milliseconds (Locust's float timing) as whole microseconds inside the histogram's range."""
    return min(max(round(ms * 1000), 0), HIGHEST_US)


def _ms(us: float) -> float:
    """Microseconds as milliseconds, to the microsecond."""
    return round(us / 1000, 3)


def summarize(histogram: HdrHistogram, *, exact: ExactStats | None = None) -> dict[str, float | int | None]:
    """Count, mean and percentiles in ms; exact min/max/mean when the recorder tracked them."""
    count = histogram.get_total_count()
    if not count:
        return {"count": 0, "min": None, "mean": None, **dict.fromkeys(PERCENTILES), "max": None}
    values = histogram.get_percentile_to_value_dict(list(PERCENTILES.values()))
    low = exact.min_us if exact and exact.count == count else histogram.get_min_value()
    high = exact.max_us if exact and exact.count == count else histogram.get_max_value()
    mean = exact.sum_us / count if exact and exact.count == count else histogram.get_mean_value()
    # A percentile is the top of its 0.1% bucket; the true sample value never exceeds the exact max.
    figures: dict[str, float | int | None] = {"count": count, "min": _ms(low), "mean": _ms(mean)}
    for key, percentile in PERCENTILES.items():
        figures[key] = _ms(min(max(values[percentile], low), high))
    figures["max"] = _ms(high)
    return figures


def histogram_record(histogram: HdrHistogram) -> dict[str, Any]:
    """The raw histogram as results.json keeps it: enough to recompute any percentile."""
    return {
        "encoding": "hdrhistogram-v2-base64",
        "unit": UNIT,
        "significant_digits": histogram.significant_figures,
        "count": histogram.get_total_count(),
        "data": encode(histogram),
    }


@dataclass
class ExactStats:
    """Exact count, sum, min and max beside a histogram (the histogram rounds to its bucket)."""

    count: int = 0
    sum_us: int = 0
    min_us: int = 0
    max_us: int = 0

    def add(self, us: int) -> None:
        """One sample."""
        self.min_us = us if not self.count else min(self.min_us, us)
        self.max_us = max(self.max_us, us)
        self.count += 1
        self.sum_us += us

    def merge(self, other: dict[str, int]) -> None:
        """Another recorder's exact figures."""
        if not other.get("count"):
            return
        self.min_us = other["min_us"] if not self.count else min(self.min_us, other["min_us"])
        self.max_us = max(self.max_us, other["max_us"])
        self.count += other["count"]
        self.sum_us += other["sum_us"]

    def to_dict(self) -> dict[str, int]:
        """Plain-JSON form."""
        return {"count": self.count, "sum_us": self.sum_us, "min_us": self.min_us, "max_us": self.max_us}


@dataclass
class Track:
    """One latency series: its histogram and exact side figures."""

    histogram: HdrHistogram = field(default_factory=new_histogram)
    exact: ExactStats = field(default_factory=ExactStats)

    def add(self, us: int) -> None:
        """One sample."""
        self.histogram.record_value(us)
        self.exact.add(us)

    def merge(self, data: dict[str, Any]) -> None:
        """Another recorder's track (bucket by bucket)."""
        if data.get("exact", {}).get("count"):
            self.histogram.decode_and_add(data["histogram"])
            self.exact.merge(data["exact"])

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"histogram": encode(self.histogram), "exact": self.exact.to_dict()}

    def summary(self) -> dict[str, float | int | None]:
        """Percentiles of the track, in ms."""
        return summarize(self.histogram, exact=self.exact)


@dataclass
class KindStats:
    """Requests of one kind (one horizon): counts and the latency of its successful answers."""

    requests: int = 0
    failures: int = 0
    latency: Track = field(default_factory=Track)


@dataclass
class StageStats:
    """Requests an open-model schedule meant to send within one stage (by intended send time)."""

    requests: int = 0
    failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency: Track = field(default_factory=Track)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "requests": self.requests,
            "failures": self.failures,
            "errors": dict(self.errors),
            "latency": self.latency.to_dict(),
        }

    def merge(self, data: dict[str, Any]) -> None:
        """Another recorder's figures for the same stage."""
        self.requests += data["requests"]
        self.failures += data["failures"]
        self.errors.update(data["errors"])
        self.latency.merge(data["latency"])


@dataclass
class SecondStats:
    """Requests that completed within one wall-clock second."""

    requests: int = 0
    failures: int = 0
    histogram: HdrHistogram = field(default_factory=lambda: new_histogram(SERIES_DIGITS))


class Recorder:
    """Every finished request of one Locust process (or, on a master, of all its workers)."""

    def __init__(self, origin: str = "local") -> None:
        """An empty recorder; `origin` names the process (a worker's id)."""
        self.origin = origin  # which process recorded (a worker's id), to check that a master heard from all
        self.cumulative = 0  # requests this process recorded since the test started; drain() keeps it
        self.origins: dict[str, int] = {}
        self.reset()

    def start(self, started: float) -> None:
        """A new test starts at `started` (epoch seconds): forget everything, the cumulative count too."""
        self.cumulative = 0
        self.origins = {}
        self.reset(started=started)

    def reset(self, *, started: float | None = None) -> None:
        """Forget what was recorded (a drain keeps the cumulative count, so a master can check it heard all)."""
        self.started = started
        self.ended: float | None = None
        self.requests = 0
        self.latency = Track()  # successful requests: from the intended send time in an open-model run
        self.response = Track()  # successful requests from the actual send (what Locust measures)
        self.server = Track()  # the server's own run() time, from x-ms-run-fn-exec-ms
        self.errors: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.kinds: dict[str, KindStats] = {}
        self.series: dict[int, SecondStats] = {}
        self.stages: dict[int, StageStats] = {}
        self.cpu_warning = False
        self.unfinished = 0
        self.schedule: dict[str, int] = {}

    def note_schedule(self, key: str, value: int) -> None:
        """Add to a schedule counter (`*_max_us` keys keep the largest value instead)."""
        if key.endswith("_max_us"):
            self.schedule[key] = max(self.schedule.get(key, 0), value)
        else:
            self.schedule[key] = self.schedule.get(key, 0) + value

    def record(
        self,
        *,
        kind: str,
        at: float,
        latency_ms: float,
        error: str | None,
        status: int,
        server_ms: float | None = None,
        response_ms: float | None = None,
        stage: int | None = None,
        message: str = "",
    ) -> None:
        """One finished request; `latency_ms` from the intended send time when the run schedules sends."""
        us = to_us(latency_ms)
        self.requests += 1
        self.cumulative += 1
        self.statuses[str(status)] += 1
        stats = self.kinds.setdefault(kind, KindStats())
        stats.requests += 1
        second = self.series.setdefault(int(at), SecondStats())
        second.requests += 1
        stage_stats = self.stages.setdefault(stage, StageStats()) if stage is not None else None
        if stage_stats is not None:
            stage_stats.requests += 1
        if error is not None:
            self.errors[error] += 1
            self.examples.setdefault(error, message)
            stats.failures += 1
            second.failures += 1
            if stage_stats is not None:
                stage_stats.failures += 1
                stage_stats.errors[error] += 1
            return
        self.latency.add(us)
        self.response.add(to_us(response_ms) if response_ms is not None else us)
        stats.latency.add(us)
        second.histogram.record_value(us)
        if stage_stats is not None:
            stage_stats.latency.add(us)
        if server_ms is not None and math.isfinite(server_ms):
            self.server.add(to_us(server_ms))

    def payload(self) -> dict[str, Any]:
        """Everything recorded, as plain JSON (histograms base64-encoded)."""
        return {
            "version": PAYLOAD_VERSION,
            "started": self.started,
            "ended": self.ended,
            "requests": self.requests,
            "latency": self.latency.to_dict(),
            "response": self.response.to_dict(),
            "server": self.server.to_dict(),
            "errors": dict(self.errors),
            "statuses": dict(self.statuses),
            "examples": dict(self.examples),
            "kinds": {
                name: {"requests": s.requests, "failures": s.failures, "latency": s.latency.to_dict()}
                for name, s in self.kinds.items()
            },
            "series": {
                str(second): {"requests": s.requests, "failures": s.failures, "histogram": encode(s.histogram)}
                for second, s in sorted(self.series.items())
            },
            "stages": {str(index): stage.to_dict() for index, stage in sorted(self.stages.items())},
            "cpu_warning": self.cpu_warning,
            "unfinished": self.unfinished,
            "schedule": dict(self.schedule),
            "origins": {**self.origins, self.origin: self.cumulative} if self.cumulative else dict(self.origins),
        }

    def drain(self) -> dict[str, Any]:
        """The payload recorded since the last drain, then start afresh (a worker's report to its master)."""
        data = self.payload()
        started, cpu_warning = self.started, self.cpu_warning
        self.reset(started=started)
        self.cpu_warning = cpu_warning
        return data

    def merge(self, data: dict[str, Any]) -> None:
        """Add another recorder's payload: counts add, histograms add bucket by bucket (exact)."""
        if data.get("version") != PAYLOAD_VERSION:
            raise ValueError(f"recorder payload version {data.get('version')!r}, expected {PAYLOAD_VERSION}")
        if data.get("started") is not None:
            self.started = data["started"] if self.started is None else min(self.started, data["started"])
        if data.get("ended") is not None:
            self.ended = data["ended"] if self.ended is None else max(self.ended, data["ended"])
        self.requests += data["requests"]
        self.latency.merge(data["latency"])
        self.response.merge(data["response"])
        self.server.merge(data["server"])
        self.errors.update(data["errors"])
        self.statuses.update(data["statuses"])
        for kind, message in data["examples"].items():
            self.examples.setdefault(kind, message)
        for name, kind_data in data["kinds"].items():
            stats = self.kinds.setdefault(name, KindStats())
            stats.requests += kind_data["requests"]
            stats.failures += kind_data["failures"]
            stats.latency.merge(kind_data["latency"])
        for second, second_data in data["series"].items():
            entry = self.series.setdefault(int(second), SecondStats())
            entry.requests += second_data["requests"]
            entry.failures += second_data["failures"]
            entry.histogram.decode_and_add(second_data["histogram"])
        for index, stage_data in data["stages"].items():
            self.stages.setdefault(int(index), StageStats()).merge(stage_data)
        self.cpu_warning = self.cpu_warning or bool(data["cpu_warning"])
        self.unfinished += data["unfinished"]
        for key, value in data["schedule"].items():
            self.note_schedule(key, value)
        for origin, total in data.get("origins", {}).items():
            self.origins[origin] = max(self.origins.get(origin, 0), total)
