"""Exact latency recording: HDR percentiles against exact ones, exact merging, error kinds, answer checks."""

from __future__ import annotations

import math
import random

import pytest

from load.classify import (
    BAD_BODY,
    CONNECTION,
    HTTP_4XX,
    HTTP_5XX,
    NON_JSON,
    OTHER,
    TIMEOUT,
    BadBody,
    BadStatus,
    NonJsonBody,
    check_answer,
    classify,
    describe,
)
from load.recorder import Recorder, decode, encode, new_histogram, summarize

TOLERANCE = 0.001  # 3 significant digits: within 0.1% of the exact sample value


def exact_percentile(sorted_values: list[int], percentile: float) -> int:
    """The sample at HDR's rank for a percentile (nearest rank, rounded half up)."""
    rank = max(int(percentile * len(sorted_values) / 100 + 0.5), 1)
    return sorted_values[rank - 1]


def latency_samples(count: int, seed: int) -> list[int]:
    """Seeded log-normal latencies in microseconds, from about 0.3 ms to a few seconds."""
    rng = random.Random(seed)
    return [max(1, round(rng.lognormvariate(math.log(8000), 1.0))) for _ in range(count)]


def record_all(recorder: Recorder, samples: list[int], *, start: float = 1_000_000.0) -> None:
    for i, us in enumerate(samples):
        recorder.record(kind="horizon=1", at=start + i / 100, latency_ms=us / 1000, error=None, status=200)


@pytest.mark.parametrize("seed", [1, 2, 3], ids=["seed1", "seed2", "seed3"])
def test_percentiles_match_exact_samples(seed: int) -> None:
    samples = latency_samples(20_000, seed)
    recorder = Recorder()
    record_all(recorder, samples)
    figures = summarize(recorder.latency.histogram, exact=recorder.latency.exact)
    ordered = sorted(samples)
    for key, percentile in (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9)):
        exact_ms = exact_percentile(ordered, percentile) / 1000
        assert abs(figures[key] - exact_ms) <= TOLERANCE * exact_ms, (key, figures[key], exact_ms)
    assert figures["count"] == len(samples)
    assert figures["max"] == max(samples) / 1000
    assert figures["min"] == min(samples) / 1000
    assert figures["mean"] == round(sum(samples) / len(samples) / 1000, 3)


def test_percentiles_never_exceed_the_max() -> None:
    recorder = Recorder()
    record_all(recorder, [1_234_567] * 5 + [1000] * 95)
    figures = recorder.latency.summary()
    assert figures["p99"] == figures["max"] == 1234.567
    assert figures["p50"] == 1.0


def test_merged_payloads_equal_one_recording() -> None:
    samples = latency_samples(6000, 9)
    whole, left, right = Recorder(), Recorder(), Recorder()
    record_all(whole, samples)
    record_all(left, samples[:2500])
    record_all(right, samples[2500:], start=1_000_000.0 + 25)
    merged = Recorder()
    merged.merge(left.payload())
    merged.merge(right.payload())
    assert merged.latency.summary() == whole.latency.summary()
    assert merged.requests == whole.requests == 6000
    assert decode(merged.payload()["latency"]["histogram"]).get_total_count() == 6000
    assert {s: v.requests for s, v in merged.series.items()} == {s: v.requests for s, v in whole.series.items()}


def test_drain_hands_over_and_starts_afresh() -> None:
    recorder = Recorder()
    recorder.reset(started=5.0)
    record_all(recorder, [1000, 2000, 3000])
    recorder.cpu_warning = True
    drained = recorder.drain()
    assert drained["requests"] == 3
    assert recorder.requests == 0
    assert recorder.started == 5.0
    assert recorder.cpu_warning is True
    master = Recorder()
    master.merge(drained)
    master.merge(recorder.drain())
    assert master.latency.exact.count == 3
    assert master.cpu_warning is True


def test_errors_are_counted_by_kind_and_kept_out_of_latency() -> None:
    recorder = Recorder()
    recorder.record(kind="horizon=1", at=10.2, latency_ms=4.0, error=None, status=200, server_ms=2.5)
    recorder.record(kind="horizon=1", at=10.7, latency_ms=90.0, error=HTTP_5XX, status=503, message="HTTP 503: busy")
    recorder.record(kind="horizon=24", at=11.1, latency_ms=60.0, error=HTTP_5XX, status=500, message="HTTP 500: x")
    recorder.record(kind="horizon=24", at=11.5, latency_ms=30_000.0, error=TIMEOUT, status=0, message="timeout")
    data = recorder.payload()
    assert data["requests"] == 4
    assert data["errors"] == {HTTP_5XX: 2, TIMEOUT: 1}
    assert data["statuses"] == {"200": 1, "503": 1, "500": 1, "0": 1}
    assert data["examples"] == {HTTP_5XX: "HTTP 503: busy", TIMEOUT: "timeout"}
    assert data["latency"]["exact"] == {"count": 1, "sum_us": 4000, "min_us": 4000, "max_us": 4000}
    assert data["server"]["exact"]["count"] == 1
    assert data["server"]["exact"]["sum_us"] == 2500
    assert {s: (v["requests"], v["failures"]) for s, v in data["series"].items()} == {"10": (2, 1), "11": (2, 2)}
    assert (data["kinds"]["horizon=24"]["requests"], data["kinds"]["horizon=24"]["failures"]) == (2, 2)


def test_histogram_encoding_round_trips() -> None:
    histogram = new_histogram()
    for value in (1, 999, 1000, 123_456, 3_600_000_000):
        histogram.record_value(value)
    again = decode(encode(histogram))
    assert again.get_total_count() == 5
    assert again.get_max_value() == histogram.get_max_value()


def named(name: str, base: type[BaseException] = Exception) -> BaseException:
    """An exception of a class called `name`, standing in for gevent's and geventhttpclient's (matched by name)."""
    return type(name, (base,), {})("boom")


class _Wrapped(Exception):
    """Like geventhttpclient's RetriesExceeded: the real cause sits in `original`."""

    def __init__(self, original: BaseException) -> None:
        super().__init__("retries exceeded")
        self.original = original


@pytest.mark.parametrize(
    ("status", "exc", "kind"),
    [
        (0, None, None),
        (404, BadStatus(404, "HTTP 404: nope"), HTTP_4XX),
        (503, BadStatus(503, "HTTP 503: busy"), HTTP_5XX),
        (504, named("LocustBadStatusCode"), HTTP_5XX),
        (200, NonJsonBody("html"), NON_JSON),
        (200, BadBody("no result"), BAD_BODY),
        (0, TimeoutError("timed out"), TIMEOUT),
        (0, TimeoutError("timed out"), TIMEOUT),
        (0, named("Timeout", BaseException), TIMEOUT),
        (0, _Wrapped(TimeoutError("timed out")), TIMEOUT),
        (0, ConnectionRefusedError(111, "refused"), CONNECTION),
        (0, ConnectionResetError(104, "reset"), CONNECTION),
        (0, named("HTTPConnectionClosed"), CONNECTION),
        (0, _Wrapped(ConnectionRefusedError(111, "refused")), CONNECTION),
        (0, ValueError("odd"), OTHER),
    ],
    ids=[
        "ok",
        "404",
        "503",
        "504-from-locust",
        "non-json",
        "bad-body",
        "timeout",
        "socket-timeout",
        "gevent-timeout",
        "wrapped-timeout",
        "refused",
        "reset",
        "closed",
        "wrapped-refused",
        "unknown",
    ],
)
def test_classify_error_kinds(status: int, exc: BaseException | None, kind: str | None) -> None:
    assert classify(status, exc) == kind


def test_good_answer_passes() -> None:
    assert check_answer(200, b'{"result": [1.0, 2.0], "horizon": 2}', 2) is None


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (
            500,
            b'{"message": "An unexpected error occurred"}\n',
            HTTP_5XX,
            'HTTP 500: {"message": "An unexpected error occurred"}',
        ),
        (502, b"<html>\n<head><title>502 Bad Gateway</title></head>", HTTP_5XX, "HTTP 502: <html>"),
        (400, b"", HTTP_4XX, "HTTP 400: (empty body)"),
        (
            200,
            b"<html><body>oops</body></html>",
            NON_JSON,
            "HTTP 200 with a non-JSON body: <html><body>oops</body></html>",
        ),
        (200, b'{"forecast": [1]}', BAD_BODY, "HTTP 200 without 'result': {\"forecast\": [1]}"),
        (200, b'{"result": [1.0]}', BAD_BODY, "HTTP 200 with 'result' of 1 values, expected 2 values"),
    ],
    ids=["500-json", "502-html", "400-empty", "200-html", "200-no-result", "200-short"],
)
def test_unusable_answers_fail_with_status_and_first_line(status: int, body: bytes, kind: str, message: str) -> None:
    problem = check_answer(status, body, 2)
    assert problem is not None
    assert problem.kind == kind
    assert str(problem) == message


def test_failure_text_never_carries_the_key() -> None:
    secret = "k3y-that-must-not-leak"
    problem = check_answer(401, f"wrong key {secret}".encode(), 1, secret=secret)
    assert str(problem) == "HTTP 401: wrong key ***"
    assert describe(_Wrapped(ConnectionRefusedError(111, f"refused {secret}")), secret=secret).endswith("refused ***")


def test_long_first_lines_are_shortened() -> None:
    problem = check_answer(500, b"x" * 500, 1)
    assert problem is not None
    assert len(str(problem)) == len("HTTP 500: ") + 120
