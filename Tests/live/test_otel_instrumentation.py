"""Real OpenTelemetry instrumentation from PyPI, unmodified, in front of perfgate's POST /v1/traces.

A Flask or FastAPI gateway (otel_app.py, run as its own process) calls a fake OpenAI-compatible
backend (fake_openai.py, a thread of this process, delays drawn from a seeded generator) through
the real `openai` SDK. The stock instrumentations trace it (opentelemetry-instrumentation-flask or
-fastapi, -openai-v2, and -httpx's HTTPX2ClientInstrumentor, since openai 3 sends with httpx2) and
the stock OTLPSpanExporter sends the spans to perfgate through a BatchSpanProcessor (200 ms
schedule, so exports split traces) or a SimpleSpanProcessor (one span per export, children first).
Requests go through the gateway from a real HTTP client, several at once.

The app measures each request itself, around the SDK's own calls: from calling `create` to the
first chunk out of the SDK's iterator (`ttfb`; the view waits for it, then relays the rest), and
from there to the iterator's end (`streaming`); for a call that does not stream, `create` alone
(`ttfb`). perfgate's histograms must agree:

- one event per request: `frontend_processing_seconds_count` and every stage's
  `request_stage_duration_seconds_count` for the route (`http.route`) equal the requests sent;
- labels: `provider` is the instrumentation's gen_ai.provider.name ("openai"), `model` the model
  asked for (gen_ai.request.model; the backend answers a dated snapshot name, gen_ai.response.model);
- `backend_ttfb_seconds_sum` and `streaming_duration_seconds_sum` equal the sums the app measured,
  within 5%, where the trace holds a first-chunk signal: the httpx client span under the gen_ai
  span, which ends at the response head (the fake backend sends the head with the first chunk), or
  util-genai's gen_ai.response.time_to_first_chunk; a streamed call with no such signal gives no
  TTFB and no streaming time (nothing invented), and neither does a call that did not stream
  unless its trace says so (openai-v2 writes no gen_ai.request.stream): with the httpx span, its
  TTFB is the response head's and its stream the whole body's short transfer;
- nothing refused, nothing dropped.

Flask's server span ends when the view returns, before a streamed body is sent, so the gen_ai
span of a streamed call ends after its root: perfgate must complete the request's event with
spans that arrive after their root within --trace-wait. FastAPI's server span ends after the body.

Before perfgate is judged, each test checks its own premise on a copy of the spans kept by the
app: the span-derived timings match what the app measured, so a failure of the perfgate
assertions is perfgate's, not the instrumentation's or the test's.

The README's stage-span snippet is tried in a Flask view that streams: a span started in the
generator belongs to the request only when the generator attaches the view's context
(flask.stream_with_context does not carry OpenTelemetry's context); otherwise it is a trace of
its own, with no endpoint, refused.
"""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from exposition import samples, value
from fake_openai import FakeOpenAI
from server_process import ServerProcess, free_port

APP = Path(__file__).with_name("otel_app.py")
MODEL = "gpt-4o-mini"
CHAT = "/v1/chat/completions"
TOLERANCE = Decimal("0.05")
# The backend's delays: time to first chunk (with the response head) 0.2-0.8 s, streams of 0.2-3 s.
# What the app measures as its TTFB also holds the app's own work between the response head and
# the first chunk out of the SDK, a few ms: with a SimpleSpanProcessor, synchronous exports of the
# spans ending there (and, under asyncio, of other requests' spans, which block the event loop).
BACKEND = {"first_chunk": (0.2, 0.8), "stream": (0.2, 3.0)}
CONCURRENCY = {"batch": 6, "simple": 3}
NANO = Decimal(1_000_000_000)


class App(ServerProcess):
    """otel_app.py in its own process, exporting to perfgate with the stock OTLP exporter."""

    def __init__(self, workdir, framework, backend, perfgate, instrument, processor, env=None):
        port = free_port()
        # The instrumentation reads OTEL_* variables: only those the test sets are seen.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        super().__init__(
            [sys.executable, APP, "--framework", framework, "--port", port, "--backend-url", backend.base_url,
             "--instrument", instrument, "--exporter", "otlp", "--endpoint", f"{perfgate.base}/v1/traces",
             "--processor", processor, "--schedule-delay-ms", "200", "--keep-spans"],
            port, "/_health", Path(workdir) / f"app-{framework}-{port}.log", cwd=Path(workdir),
            env={**clean, "PYTHONPATH": str(APP.parent), **(env or {})},
        )

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def flush(self):
        response = httpx.post(self.base + "/_flush", timeout=40)
        assert response.status_code == 200 and response.json() == {"flushed": True}, response.text

    def measurements(self, ids):
        measured = {m["id"]: m for m in httpx.get(self.base + "/_measurements", timeout=10).json()}
        assert set(ids) <= set(measured), f"the app measured {sorted(measured)}, not all of {ids}"
        return [measured[i] for i in ids]

    def spans(self):
        return httpx.get(self.base + "/_spans", timeout=10).json()


@pytest.fixture
def start_app(tmp_path):
    apps = []

    def start(*args, **kwargs):
        app = App(tmp_path, *args, **kwargs)
        apps.append(app)
        return app.start(timeout=90)

    yield start
    for app in apps:
        app.stop()


def drive(app, path, count, stream, prefix, concurrency=6):
    """`count` requests through the app, `concurrency` at a time, each read to its end; their ids."""
    ids = [f"{prefix}-{i}" for i in range(count)]

    def one(request_id):
        with httpx.Client(timeout=120) as client:
            response = client.post(app.base + path, json={"model": MODEL, "stream": stream},
                                   headers={"x-request-id": request_id})
        assert response.status_code == 200, response.text
        if stream:
            assert response.text.rstrip().endswith("data: [DONE]"), response.text[-200:]
        else:
            assert response.json()["model"] == MODEL + "-2024-07-18"

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, ids))
    return ids


def settled_metrics(perfgate, endpoint, count, timeout=5.0):
    """/metrics once the endpoint has `count` events (then a moment more, for any surplus to show),
    or after `timeout` seconds. Every span was exported, and answered, before this is called."""
    deadline = time.monotonic() + timeout
    while histogram(perfgate.metrics_text(), "frontend_processing_seconds", endpoint=endpoint)[0] < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(0.3)
    return perfgate.metrics_text()


def histogram(text, family, **labels):
    """(_count, _sum) of the series with exactly these labels; (0, 0) when absent."""
    count = value(text, family + "_count", **labels)
    total = value(text, family + "_sum", **labels)
    return (int(count or 0), Decimal(total or 0))


def endpoint_series(text, family, endpoint):
    """{labels without endpoint: (_count, _sum)} of one family's series for the endpoint."""
    found = {}
    for name, labels, raw in samples(text):
        if name in (family + "_count", family + "_sum") and labels.get("endpoint") == endpoint:
            key = tuple(sorted((k, v) for k, v in labels.items() if k != "endpoint"))
            count, total = found.get(key, (0, Decimal(0)))
            if name.endswith("_count"):
                count = int(Decimal(raw))
            else:
                total = Decimal(raw)
            found[key] = (count, total)
    return found


def close(actual, expected, what):
    assert expected > 0, f"{what}: nothing expected"
    print(f"{what}: {Decimal(actual):.6f} s against {Decimal(expected):.6f} s measured "
          f"({(Decimal(actual) - Decimal(expected)) / Decimal(expected) * 100:+.2f}%)")
    assert abs(Decimal(actual) - Decimal(expected)) <= TOLERANCE * Decimal(expected), (
        f"{what}: {Decimal(actual):.6f} s, app measured {Decimal(expected):.6f} s "
        f"({(Decimal(actual) - Decimal(expected)) / Decimal(expected) * 100:+.2f}%)"
    )


def measured_sums(measurements):
    ttfb = sum(Decimal(repr(m["ttfb"])) for m in measurements)
    streaming = sum(Decimal(repr(m["streaming"])) for m in measurements if m["streaming"] is not None)
    return ttfb, streaming


# The spans the app kept: the premise of each test, checked before perfgate is.

def traces_of(spans, endpoint):
    """{trace id: spans} of the traces whose root (no parent) has http.route == endpoint."""
    by_trace = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], []).append(span)
    return {
        trace_id: members for trace_id, members in by_trace.items()
        if any(s["parent_id"] is None and s["attributes"].get("http.route") == endpoint for s in members)
    }


def gen_ai_timings(members):
    """(ttfb, streaming) in ns from one trace's spans, as perfgate is to compute them: the gen_ai span's
    time_to_first_chunk, else its HTTP client child (ends at the response head), else (duration, None)."""
    gen_ai = [s for s in members if s["attributes"].get("gen_ai.operation.name") == "chat"]
    assert len(gen_ai) == 1, [s["name"] for s in members]
    call = gen_ai[0]
    ttfc = call["attributes"].get("gen_ai.response.time_to_first_chunk")
    if ttfc is not None:
        first = call["start"] + round(ttfc * 1e9)
        return first - call["start"], call["end"] - first
    http = [s for s in members if s["parent_id"] == call["span_id"] and s["kind"] == "CLIENT"
            and ("http.method" in s["attributes"] or "http.request.method" in s["attributes"])]
    if http:
        assert len(http) == 1
        return http[0]["end"] - call["start"], call["end"] - http[0]["end"]
    return call["end"] - call["start"], None


def check_premise(app, endpoint, measurements, first_chunk_signal):
    """The app's spans: one trace per request, rooted at the server span, and (with a first-chunk
    signal, or no stream) timings within 5% of the app's own measurements."""
    traces = traces_of(app.spans(), endpoint)
    assert len(traces) == len(measurements), f"{len(traces)} traces for {len(measurements)} requests"
    if not first_chunk_signal:
        return
    timings = [gen_ai_timings(members) for members in traces.values()]
    ttfb, streaming = measured_sums(measurements)
    close(sum(Decimal(t) for t, _ in timings) / NANO, ttfb, "premise: TTFB from the spans")
    if streaming:
        close(sum(Decimal(s) for _, s in timings) / NANO, streaming, "premise: streaming from the spans")


def total(text, name):
    """A counter summed over all its label sets (0 when absent)."""
    return sum((Decimal(raw) for n, _, raw in samples(text) if n == name), Decimal(0))


def otlp_summary(text):
    """perfgate's own OTLP counters, for failure messages."""
    counters = {name + "".join(f"{{{k}={v}}}" for k, v in labels.items()): raw
                for name, labels, raw in samples(text) if name.startswith("perfgate_otlp_")}
    return ", ".join(f"{k} {v}" for k, v in sorted(counters.items()))


def assert_nothing_lost(text):
    # (Traces may still be waiting: perfgate keeps a counted trace for spans that end after its root.)
    summary = otlp_summary(text)
    assert total(text, "perfgate_otlp_spans_refused_total") == 0, f"spans refused: {summary}"
    assert total(text, "perfgate_otlp_spans_dropped_total") == 0, f"spans dropped: {summary}"
    assert (value(text, "perfgate_otlp_traces_total", outcome="refused") or 0) == 0, summary


def assert_events(text, endpoint, count, stages):
    """One event per request: frontend_processing_seconds counts each request once, and exactly
    `stages` are observed, each once per request. The frontend time perfgate derives when no
    frontend stage span exists (gen_ai start less root start) may also show as a stage
    `frontend_processing`; if so, once per request, with frontend_processing_seconds' sum."""
    summary = otlp_summary(text)
    frontend_count, frontend_sum = histogram(text, "frontend_processing_seconds", endpoint=endpoint)
    assert frontend_count == count, (
        f"frontend_processing_seconds_count{{endpoint={endpoint!r}}} {frontend_count}: one event per request "
        f"({count}) expected; {summary}")
    by_stage = {dict(key)["stage"]: found for key, found in
                endpoint_series(text, "request_stage_duration_seconds", endpoint).items()}
    derived = by_stage.pop("frontend_processing", None)
    if {"request_parsing", "auth_validation", "request_preparation"} & set(stages):
        assert derived is None, f"a derived frontend_processing stage {derived} beside the frontend stage spans"
    elif derived is not None:
        assert derived == (count, frontend_sum), (
            f"stage frontend_processing {derived}, frontend_processing_seconds {(frontend_count, frontend_sum)}")
    observed = {stage: found[0] for stage, found in by_stage.items()}
    assert observed == {stage: count for stage in stages}, (
        f"request_stage_duration_seconds_count by stage: {observed}, wanted {sorted(stages)} x {count}; {summary}")


def assert_backend(text, endpoint, measurements, ttfb_expected, streaming_expected):
    """backend_ttfb_seconds / streaming_duration_seconds for the endpoint: one series labelled
    provider="openai", model=MODEL, with the sums the app measured; or no series at all."""
    ttfb, streaming = measured_sums(measurements)
    labels = (("model", MODEL), ("provider", "openai"))
    for family, expected, wanted in (("backend_ttfb_seconds", ttfb, ttfb_expected),
                                     ("streaming_duration_seconds", streaming, streaming_expected)):
        found = endpoint_series(text, family, endpoint)
        if not wanted:
            assert found == {}, f"{family}: nothing to observe (no signal), found {found}"
            continue
        assert list(found) == [labels], f"{family}: series {list(found)}, wanted provider=openai, model={MODEL}"
        count, observed = found[labels]
        assert count == len(measurements), f"{family}_count {count} for {len(measurements)} requests"
        close(observed, expected, f"{family}_sum")


def frontend_is_small(text, endpoint, count):
    # Frontend time is the gen_ai span's start less the root's: the view's work before the call
    # (a few ms in these apps), never the backend's time.
    _, frontend = histogram(text, "frontend_processing_seconds", endpoint=endpoint)
    assert Decimal(0) < frontend < Decimal("0.05") * count, f"frontend_processing_seconds_sum {frontend}"


@pytest.mark.parametrize("framework,processor", [("flask", "batch"), ("flask", "simple"),
                                                 ("fastapi", "batch"), ("fastapi", "simple")])
def test_streamed_calls_are_timed_by_the_httpx_client_span(perfgate, start_app, framework, processor):
    """server + openai-v2 + httpx: the HTTP client span under the gen_ai span ends at the response
    head, which came with the first chunk: TTFB and streaming time are the app's."""
    seed = {("flask", "batch"): 1, ("flask", "simple"): 2, ("fastapi", "batch"): 3, ("fastapi", "simple"): 4}
    with FakeOpenAI(seed=seed[framework, processor], **BACKEND) as backend:
        app = start_app(framework, backend, perfgate, "server,openai,httpx", processor)
        ids = drive(app, CHAT, 12, stream=True, prefix=f"{framework}-{processor}", concurrency=CONCURRENCY[processor])
        measurements = app.measurements(ids)
        app.flush()
    check_premise(app, CHAT, measurements, first_chunk_signal=True)
    text = settled_metrics(perfgate, CHAT, len(ids))
    assert_events(text, CHAT, len(ids), {"backend_fetch", "stream_processing"})
    assert_backend(text, CHAT, measurements, ttfb_expected=True, streaming_expected=True)
    frontend_is_small(text, CHAT, len(ids))
    assert_nothing_lost(text)


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_streamed_calls_without_a_first_chunk_signal_invent_nothing(perfgate, start_app, framework):
    """server + openai-v2, no httpx: openai-v2 2.4b0 records no time to first chunk, so a streamed
    call has no TTFB and no streaming time to give; the request is still one event (its frontend
    time)."""
    with FakeOpenAI(seed=11, **BACKEND) as backend:
        app = start_app(framework, backend, perfgate, "server,openai", "batch")
        ids = drive(app, CHAT, 10, stream=True, prefix=f"{framework}-nosignal")
        measurements = app.measurements(ids)
        app.flush()
    check_premise(app, CHAT, measurements, first_chunk_signal=False)
    text = settled_metrics(perfgate, CHAT, len(ids))
    assert_events(text, CHAT, len(ids), set())
    assert_backend(text, CHAT, measurements, ttfb_expected=False, streaming_expected=False)
    frontend_is_small(text, CHAT, len(ids))
    assert_nothing_lost(text)


@pytest.mark.parametrize("framework,processor", [("flask", "simple"), ("fastapi", "batch")])
def test_a_call_that_does_not_stream_is_timed_to_its_response_head(perfgate, start_app, framework, processor):
    """server + openai-v2 + httpx, stream=false: the answer's head comes when the model is done, so
    the TTFB is the backend's whole delay (its own record, drawn per request), and the body's short
    transfer is the call's stream. (The app's own time in `create` is no reference here: with the
    simple processor it holds the synchronous export of the httpx span, a debug perfgate's answer.)"""
    # Answers of 0.4-1.2 s: the SDK's own few ms in the call stay well inside 5%.
    with FakeOpenAI(seed=23, delay=(0.4, 1.2)) as backend:
        app = start_app(framework, backend, perfgate, "server,openai,httpx", processor)
        ids = drive(app, CHAT, 12, stream=False, prefix=f"{framework}-whole", concurrency=CONCURRENCY[processor])
        measurements = app.measurements(ids)
        app.flush()
        delays = sum(Decimal(repr(r["delay"])) for r in backend.served if not r["stream"])
    check_premise(app, CHAT, measurements, first_chunk_signal=False)
    text = settled_metrics(perfgate, CHAT, len(ids))
    assert_events(text, CHAT, len(ids), {"backend_fetch", "stream_processing"})
    count, observed = histogram(text, "backend_ttfb_seconds", endpoint=CHAT, provider="openai", model=MODEL)
    assert count == len(ids)
    assert observed >= delays, "the TTFB holds the backend's whole wait"
    close(observed, delays, "backend_ttfb_seconds_sum vs the backend's answer delays")
    _, transfer = histogram(text, "streaming_duration_seconds", endpoint=CHAT, provider="openai", model=MODEL)
    assert transfer < Decimal("0.05") * observed, f"a whole answer's transfer is short: {transfer} s against {observed} s"
    frontend_is_small(text, CHAT, len(ids))
    assert_nothing_lost(text)


def test_a_call_that_does_not_say_whether_it_streamed_is_not_split(perfgate, start_app):
    """server + openai-v2, no httpx, stream=false: openai-v2 2.4b0 writes no gen_ai.request.stream,
    so its span cannot tell a whole answer from a stream; perfgate invents no TTFB for it, and the
    request is still one event with its frontend time."""
    with FakeOpenAI(seed=29) as backend:
        app = start_app("flask", backend, perfgate, "server,openai", "batch")
        ids = drive(app, CHAT, 8, stream=False, prefix="whole-nosignal")
        measurements = app.measurements(ids)
        app.flush()
    check_premise(app, CHAT, measurements, first_chunk_signal=False)
    text = settled_metrics(perfgate, CHAT, len(ids))
    assert_events(text, CHAT, len(ids), set())
    assert_backend(text, CHAT, measurements, ttfb_expected=False, streaming_expected=False)
    frontend_is_small(text, CHAT, len(ids))
    assert_nothing_lost(text)


def test_long_streams_complete_the_event_of_a_server_span_that_ended_first(perfgate, start_app):
    """Flask ends its server span when the view returns; streams of 8-10 s go on, and their gen_ai
    spans reach perfgate seconds after the root (BatchSpanProcessor, 200 ms schedule). The event
    is still the request's, whole."""
    # Three requests only, the app's first: its first calls' one-off work (the SDK's lazy imports,
    # pydantic's first chunk) would weigh on small TTFBs, hence 0.5-1 s here.
    with FakeOpenAI(seed=31, first_chunk=(0.5, 1.0), stream=(8.0, 10.0)) as backend:
        app = start_app("flask", backend, perfgate, "server,openai,httpx", "batch")
        ids = drive(app, CHAT, 3, stream=True, prefix="long")
        measurements = app.measurements(ids)
        app.flush()
    spans = app.spans()
    for members in traces_of(spans, CHAT).values():
        root = next(s for s in members if s["parent_id"] is None)
        gen_ai = next(s for s in members if s["attributes"].get("gen_ai.operation.name"))
        assert gen_ai["end"] - root["end"] > 7 * 10**9, "the premise: the stream outlives the server span"
    check_premise(app, CHAT, measurements, first_chunk_signal=True)
    text = settled_metrics(perfgate, CHAT, len(ids))
    assert_events(text, CHAT, len(ids), {"backend_fetch", "stream_processing"})
    assert_backend(text, CHAT, measurements, ttfb_expected=True, streaming_expected=True)
    assert_nothing_lost(text)


def test_time_to_first_chunk_from_util_genai(perfgate, start_app):
    """A backend call traced with opentelemetry-util-genai's TelemetryHandler and stream wrapper
    (the library the GenAI instrumentations build on) carries gen_ai.response.time_to_first_chunk:
    the first-chunk signal without any HTTP client span."""
    endpoint = "/v1/genai-util/chat/completions"
    with FakeOpenAI(seed=41, **BACKEND) as backend:
        app = start_app("flask", backend, perfgate, "server", "simple")
        ids = drive(app, endpoint, 10, stream=True, prefix="util-genai", concurrency=CONCURRENCY["simple"])
        measurements = app.measurements(ids)
        app.flush()
    spans = app.spans()
    assert all("gen_ai.response.time_to_first_chunk" in s["attributes"]
               for s in spans if s["attributes"].get("gen_ai.operation.name"))
    check_premise(app, endpoint, measurements, first_chunk_signal=True)
    text = settled_metrics(perfgate, endpoint, len(ids))
    assert_events(text, endpoint, len(ids), {"backend_fetch", "stream_processing"})
    assert_backend(text, endpoint, measurements, ttfb_expected=True, streaming_expected=True)
    assert_nothing_lost(text)


def staged_premise(app, endpoint, count, attached):
    """The README pattern's spans as the app kept them: llm.stream under the server span only when
    the view's context was attached in the generator; otherwise a root of its own."""
    spans = app.spans()
    traces = traces_of(spans, endpoint)
    assert len(traces) == count
    streams = [s for s in spans if s["name"] == "llm.stream"]
    in_request = [s for s in streams if s["trace_id"] in traces]
    assert len(in_request) == (count if attached else 0)
    return traces


def test_readme_stage_spans_in_a_flask_generator_with_the_view_context_attached(perfgate, start_app):
    """The README's snippet in a Flask view that streams. The generator runs after the view has
    returned and Flask's instrumentation has ended the server span and detached its context; a span
    started there belongs to the request only if the generator attaches the view's context
    (`ctx = context.get_current()` in the view, `context.attach(ctx)` in the generator). Its
    stream_processing span then ends after the root, and the event must still hold it."""
    endpoint = "/v1/staged/attached/chat/completions"
    with FakeOpenAI(seed=53, **BACKEND) as backend:
        app = start_app("flask", backend, perfgate, "server", "batch")
        ids = drive(app, endpoint, 12, stream=True, prefix="attached")
        measurements = app.measurements(ids)
        app.flush()
    traces = staged_premise(app, endpoint, len(ids), attached=True)
    durations = {"backend_fetch": 0, "stream_processing": 0}
    for members in traces.values():
        for s in members:
            stage = s["attributes"].get("perfgate.stage", s["name"])
            if stage in durations:
                durations[stage] += s["end"] - s["start"]
    ttfb, streaming = measured_sums(measurements)
    close(Decimal(durations["backend_fetch"]) / NANO, ttfb, "premise: backend_fetch spans")
    close(Decimal(durations["stream_processing"]) / NANO, streaming, "premise: llm.stream spans")
    text = settled_metrics(perfgate, endpoint, len(ids))
    assert_events(text, endpoint, len(ids), {"request_parsing", "backend_fetch", "stream_processing"})
    assert_backend(text, endpoint, measurements, ttfb_expected=True, streaming_expected=True)
    assert_nothing_lost(text)


def test_readme_stage_spans_started_in_a_flask_generator_without_the_context_are_lost(perfgate, start_app):
    """The pitfall: a span started in the generator as it stands (or under flask.stream_with_context,
    which does not carry OpenTelemetry's context either) has no parent. It is a trace of its own
    with no endpoint, refused; the request's event has no stream_processing."""
    endpoints = ["/v1/staged/naive/chat/completions", "/v1/staged/stream_with_context/chat/completions"]
    count = 6
    with FakeOpenAI(seed=59, stream=(0.2, 1.0)) as backend:
        app = start_app("flask", backend, perfgate, "server", "batch")
        for endpoint in endpoints:
            drive(app, endpoint, count, stream=True, prefix=endpoint)
        app.flush()
    for endpoint in endpoints:
        staged_premise(app, endpoint, count, attached=False)
    text = settled_metrics(perfgate, endpoints[-1], count)
    for endpoint in endpoints:
        assert_events(text, endpoint, count, {"request_parsing", "backend_fetch"})
        ttfb_series = endpoint_series(text, "backend_ttfb_seconds", endpoint)
        assert list(ttfb_series) == [(("model", MODEL), ("provider", "openai"))]
        assert endpoint_series(text, "streaming_duration_seconds", endpoint) == {}
    assert value(text, "perfgate_otlp_traces_total", outcome="refused") == 2 * count, otlp_summary(text)
    assert total(text, "perfgate_otlp_spans_refused_total") == 2 * count, otlp_summary(text)
    assert total(text, "perfgate_otlp_spans_dropped_total") == 0, otlp_summary(text)
