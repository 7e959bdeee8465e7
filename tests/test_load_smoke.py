"""A small run of the loopback load test (bench/load_http.py runs the full 32 x 200): zero errors, and it
stops by itself."""

from __future__ import annotations

from bench.load_http import load_test, report


def test_concurrent_http_clients_see_no_errors() -> None:
    result = load_test(clients=8, calls=25)
    assert result.errors == 0, report(result)
    assert len(result.latencies_ms) == 200
    assert result.rss_end_kib > 0
