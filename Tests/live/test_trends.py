"""GET /v1/trends against a live server, with the hour-ago window built from past timestamps."""

import time

import pytest


def event(provider, seconds, at):
    return {"endpoint": "/v1/chat/completions", "provider": provider, "model": "gpt-4o", "stages": {"backend_fetch": seconds}, "timestamp": at}


def test_p95_now_against_an_hour_ago_flags_the_slow_provider(perfgate):
    now = time.time()
    hour_ago = now - 3600
    events = []
    for i in range(40):
        events.append(event("openrouter", 0.3, hour_ago))
        events.append(event("openrouter", 2.9, now))  # was 0.1-0.5 s, is now 2.5-3 s
        events.append(event("portkey", 0.7, hour_ago))
        events.append(event("portkey", 0.7, now))
    assert perfgate.post_events(events).json()["accepted"] == 160

    answer = perfgate.get("/v1/trends?metric=backend_ttfb_seconds&quantile=0.95&window=5m&offset=1h&by=provider").json()
    assert answer["metric"] == "backend_ttfb_seconds" and answer["window"] == "5m" and answer["offset"] == "1h"
    groups = {g["labels"]["provider"]: g for g in answer["groups"]}
    slow, steady = groups["openrouter"], groups["portkey"]
    assert slow["status"] == "ok" and slow["degrading"] is True
    # Exponential buckets: within 1.1% of the 2.9 s and 0.3 s every event took (the classic
    # buckets could only say 2.975 s and 0.48 s).
    assert slow["resolution"] == "exponential"
    assert slow["current"] == {"count": 40, "quantile": pytest.approx(2.9, rel=0.011)}
    assert slow["previous"] == {"count": 40, "quantile": pytest.approx(0.3, rel=0.011)}
    assert slow["change"] == pytest.approx(2.9 / 0.3 - 1, rel=0.03)
    assert steady["degrading"] is False and steady["change"] == 0


def test_filters_thresholds_and_insufficient_data(perfgate):
    now = time.time()
    perfgate.post_events([event("openrouter", 1.2, now) for _ in range(5)] + [event("openrouter", 1.0, now - 3600) for _ in range(5)])
    answer = perfgate.get("/v1/trends?metric=backend_ttfb_seconds&provider=openrouter&min_count=10").json()
    [group] = answer["groups"]
    assert group["labels"] == {}
    assert group["status"] == "insufficient_data"
    assert group["reason"] == "the current window holds 5 and the previous window holds 5 events; min_count is 10"
    assert group["degrading"] is False and group["change"] is None

    answer = perfgate.get("/v1/trends?metric=backend_ttfb_seconds&provider=openrouter&min_count=5&threshold=0.1").json()
    [group] = answer["groups"]
    assert group["status"] == "ok" and group["degrading"] is True

    assert perfgate.get("/v1/trends?metric=backend_ttfb_seconds&provider=nobody").json()["groups"] == []


@pytest.mark.parametrize("query,words", [
    ("", "metric is required"),
    ("metric=stage_percentage", "is a gauge"),
    ("metric=backend_ttfb_seconds&quantile=95", "quantile must be a number from 0 to 1"),
    ("metric=backend_ttfb_seconds&offset=2d", "beyond the retention"),
    ("metric=backend_ttfb_seconds&by=stage", "cannot group backend_ttfb_seconds by 'stage'"),
    ("metric=backend_ttfb_seconds&colour=red", "unknown parameter 'colour'"),
    ("metric=backend_ttfb_seconds&provider=%zz", "malformed %-escape"),
])
def test_bad_queries_say_what_is_wrong(perfgate, query, words):
    response = perfgate.get("/v1/trends?" + query)
    assert response.status == 400
    assert words in response.json()["error"]
