"""Prometheus metrics. With PROMETHEUS_MULTIPROC_DIR set, several API processes share them."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("rapport_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "rapport_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


_counters: dict[tuple[str, str, int], Any] = {}
_histograms: dict[tuple[str, str], Any] = {}


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Counts a request; the labelled children are looked up once (labels() takes a lock).
    Labels stay bounded: route templates, known methods, status codes."""
    if method not in _METHODS:
        method = "OTHER"
    counter = _counters.get((method, route, status))
    if counter is None:
        counter = _counters[(method, route, status)] = REQUESTS.labels(method, route, str(status))
    histogram = _histograms.get((method, route))
    if histogram is None:
        histogram = _histograms[(method, route)] = LATENCY.labels(method, route)
    counter.inc()
    histogram.observe(seconds)


def render() -> tuple[bytes, str]:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
