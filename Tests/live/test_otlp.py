"""POST /v1/traces with the real OpenTelemetry SDK and its OTLP/HTTP exporter, unmodified: traces
with known span durations give /metrics equal, bucket for bucket, to an independent computation
over the same timings, whether the spans arrive in one export or one by one, children first."""

import gzip
import json
import random
import signal
import time
from decimal import Decimal

import pytest
from google.rpc import status_pb2
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from exposition import samples, total, value
from test_metrics import SEED_BUCKETS, expected_histograms, random_events

SEED_STAGES = ("request_parsing", "auth_validation", "request_preparation", "backend_fetch", "stream_processing")


def histograms(server):
    text = server.metrics_text()
    return {
        (name, frozenset(labels.items())): Decimal(raw)
        for name, labels, raw in samples(text)
        if any(name.startswith(metric) for metric in SEED_BUCKETS)
    }


def as_traced(events):
    """The events a trace of each gives: with no frontend stage span, the frontend is timed from
    the root's start to the backend_fetch span's start (send_traces starts it at the root's start)."""
    traced = []
    for event in events:
        stages = dict(event["stages"])
        if "backend_fetch" in stages and not any(s in stages for s in SEED_STAGES[:3]):
            stages["frontend_processing"] = "0"
        traced.append({**event, "stages": stages})
    return traced


def send_traces(server, events, processor, seed):
    """Each event as a trace from the SDK: a root span with http.route, one span per stage (a seed
    stage by its name, any other by perfgate.stage), provider and model as GenAI attributes on
    the backend span (or on the root when there is none; absent when 'unknown')."""
    rng = random.Random(seed)
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"{server.base}/v1/traces", timeout=10)
    provider.add_span_processor(processor(exporter))
    tracer = provider.get_tracer("perfgate-live-test")
    now = time.time_ns()
    for event in events:
        start = now - rng.randrange(1, 600) * 1_000_000_000
        labels = {}
        if event["provider"] != "unknown":
            labels["gen_ai.provider.name"] = event["provider"]
        labels["gen_ai.request.model"] = event["model"]
        root_attributes = {"http.route": event["endpoint"]}
        if "backend_fetch" not in event["stages"]:
            root_attributes.update(labels)
        root = tracer.start_span("POST " + event["endpoint"], start_time=start, attributes=root_attributes)
        context = trace.set_span_in_context(root)
        offset = 0
        for stage, text in event["stages"].items():
            nanoseconds = int(Decimal(text) * 1_000_000_000)
            attributes = dict(labels) if stage == "backend_fetch" else {}
            name = stage
            if stage not in SEED_STAGES:
                attributes["perfgate.stage"] = stage
                name = "cache GET"
            span = tracer.start_span(name, context=context, start_time=start + offset, attributes=attributes)
            span.end(end_time=start + offset + nanoseconds)
            offset += nanoseconds
        root.end(end_time=start + offset + 1000)
    assert provider.force_flush(30_000)
    provider.shutdown()


@pytest.mark.parametrize("processor", [BatchSpanProcessor, SimpleSpanProcessor], ids=["batch", "simple"])
def test_sdk_traces_give_the_histograms_of_their_timings(perfgate, processor):
    events = random_events(120 if processor is SimpleSpanProcessor else 400, random.Random(20261201))
    send_traces(perfgate, events, processor, seed=7)
    assert histograms(perfgate) == expected_histograms(as_traced(events))
    text = perfgate.metrics_text()
    assert value(text, "perfgate_otlp_traces_total", outcome="event") == len(events)
    # Roots counted without both backend stages are kept for spans that may end after them.
    open_ended = sum(1 for e in events if not ("backend_fetch" in e["stages"] and "stream_processing" in e["stages"]))
    assert value(text, "perfgate_otlp_waiting_traces") == open_ended
    assert total(text, "perfgate_otlp_spans_refused_total") == Decimal("0")


@pytest.mark.parametrize("processor", [BatchSpanProcessor, SimpleSpanProcessor], ids=["batch", "simple"])
def test_streams_that_end_after_their_root_complete_its_event_exactly(perfgate, processor):
    """Traces as a Flask gateway with the OpenAI and httpx instrumentations writes them: the server
    span ends at the response's head, the model call and its stream (0.2 s to 60 s) end later and
    reach perfgate in later exports, split at random points. Every request is one event with the
    timings computed here from the same nanoseconds: exact, whatever the split."""
    rng = random.Random(20261207)
    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"{perfgate.base}/v1/traces", timeout=10)
    provider.add_span_processor(processor(exporter) if processor is SimpleSpanProcessor else processor(exporter, schedule_delay_millis=50))
    tracer = provider.get_tracer("perfgate-live-test")
    now = time.time_ns() - 120 * 1_000_000_000
    events, calls = [], []
    for index in range(40 if processor is SimpleSpanProcessor else 120):
        start = now - rng.randrange(0, 600) * 1_000_000_000 - rng.randrange(1_000_000_000)
        frontend = rng.randrange(200_000, 40_000_000)
        first_byte = int(rng.lognormvariate(-1.2, 0.6) * 1e9)
        stream = rng.randrange(200_000_000, 60_000_000_000)
        model = rng.choice(["gpt-4o", "claude-3", "llama-3.1-70b"])
        root = tracer.start_span("POST /v1/chat/completions", kind=trace.SpanKind.SERVER, start_time=start, attributes={"http.route": "/v1/chat/completions"})
        call = tracer.start_span(f"chat {model}", context=trace.set_span_in_context(root), kind=trace.SpanKind.CLIENT, start_time=start + frontend,
                                 attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model})
        if rng.random() < 0.3:
            # util-genai's signal instead of an HTTP client span.
            call.set_attribute("gen_ai.response.time_to_first_chunk", first_byte / 1e9)
            call.set_attribute("gen_ai.request.stream", True)
            first_byte = round(first_byte / 1e9 * 1e9)
        else:
            head = tracer.start_span("POST", context=trace.set_span_in_context(call), kind=trace.SpanKind.CLIENT, start_time=start + frontend + 50_000,
                                     attributes={"http.request.method": "POST"})
            head.end(end_time=start + frontend + first_byte)
        root.end(end_time=start + frontend + first_byte + rng.randrange(1_000, 500_000))
        calls.append((call, start + frontend + first_byte + stream))
        if rng.random() < 0.1:
            provider.force_flush(10_000)
        events.append({"endpoint": "/v1/chat/completions", "provider": "openai", "model": model, "stages": {
            "frontend_processing": str(Decimal(frontend) / 1_000_000_000),
            "backend_fetch": str(Decimal(first_byte) / 1_000_000_000),
            "stream_processing": str(Decimal(stream) / 1_000_000_000),
        }})
    # The streams end after every root, in another order, in exports split anywhere.
    rng.shuffle(calls)
    for call, end in calls:
        call.end(end_time=end)
        if rng.random() < 0.1:
            provider.force_flush(10_000)
    assert provider.force_flush(30_000)
    provider.shutdown()
    assert histograms(perfgate) == expected_histograms(events)
    text = perfgate.metrics_text()
    assert value(text, "perfgate_otlp_traces_total", outcome="event") == len(events)
    assert total(text, "perfgate_otlp_spans_refused_total") == 0
    # Every backend call was counted whole: no root is left waiting.
    assert value(text, "perfgate_otlp_waiting_traces") == 0


def otlp_span(trace_id, span_id, name, start, end, parent=b"", attributes=None, flags=None):
    span = trace_pb2.Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, start_time_unix_nano=start, end_time_unix_nano=end)
    for key, text in (attributes or {}).items():
        span.attributes.append(common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=text)))
    if flags is not None:
        span.flags = flags
    return span


def export(server, spans, gzipped=False):
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.extend(spans)
    body = request.SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return server.request("POST", "/v1/traces", body, headers)


def test_partial_success_names_what_was_refused_and_counts_the_rest(perfgate):
    now = time.time_ns() - 10_000_000_000
    good = bytes(range(1, 17))
    spans = [
        otlp_span(good, b"\x00" * 7 + b"\x01", "POST /chat", now, now + 3_000_000, attributes={"http.route": "/chat"}),
        otlp_span(good, b"\x00" * 7 + b"\x02", "backend_fetch", now, now + 1_500_000_000, parent=b"\x00" * 7 + b"\x01"),
        otlp_span(b"\x01" * 8, b"\x00" * 7 + b"\x03", "backend_fetch", now, now + 1),  # trace id of 8 bytes
        # A trace that names no endpoint: its two spans are refused, with why.
        otlp_span(b"\x02" * 16, b"\x00" * 7 + b"\x04", "job", now, now + 5),
        otlp_span(b"\x02" * 16, b"\x00" * 7 + b"\x05", "stream_processing", now, now + 5, parent=b"\x00" * 7 + b"\x04"),
    ]
    response = export(perfgate, spans, gzipped=True)
    assert response.status == 200 and response.headers["Content-Type"] == "application/x-protobuf"
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.body)
    assert answer.partial_success.rejected_spans == 3
    message = answer.partial_success.error_message
    assert "spans[2]: trace id must be 16 bytes (32 hex digits), not all zero (got 8 bytes)" in message
    assert "no endpoint: set http.route on the root span or perfgate.endpoint" in message
    text = perfgate.metrics_text()
    assert value(text, "backend_ttfb_seconds_count", provider="unknown", model="unknown", endpoint="/chat") == Decimal("1")
    assert value(text, "perfgate_otlp_spans_refused_total", reason="unusable_id") == Decimal("1")
    assert value(text, "perfgate_otlp_spans_refused_total", reason="no_endpoint") == Decimal("2")
    # The status page says what to change, where operators look.
    page = perfgate.get("/").text
    assert "2 spans of traces without an endpoint: stage spans whose context was lost" in page
    assert "perfgate.endpoint" in page


def test_an_otlp_json_body_written_by_hand(perfgate):
    start = time.time_ns() - 60_000_000_000
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gateway"}}]},
        "scopeSpans": [{"scope": {"name": "hand"}, "spans": [
            {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174", "name": "POST /v1/responses", "kind": 2,
             "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 2_000_000_000),
             "attributes": [{"key": "http.route", "value": {"stringValue": "/v1/responses"}},
                            {"key": "http.response.status_code", "value": {"intValue": "200"}}]},
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
             "name": "chat gpt-4o", "startTimeUnixNano": start, "endTimeUnixNano": start + 1_234_000_000,
             "attributes": [{"key": "perfgate.stage", "value": {"stringValue": "backend_fetch"}},
                            {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                            {"key": "perfgate.model", "value": {"stringValue": "gpt-4o"}}]},
        ]}]}]}
    response = perfgate.request("POST", "/v1/traces", json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert response.status == 200 and response.json() == {}, response.text
    text = perfgate.metrics_text()
    assert value(text, "backend_ttfb_seconds_sum", provider="openai", model="gpt-4o", endpoint="/v1/responses") == Decimal("1.234")


def test_bodies_that_are_not_exports_are_refused_with_a_status(perfgate):
    response = perfgate.request("POST", "/v1/traces", b"\x0a\xff\xff\xff\xff\x0f", {"Content-Type": "application/x-protobuf"})
    assert response.status == 400
    status = status_pb2.Status.FromString(response.body)
    assert status.code == 3 and "runs past the end of its message" in status.message
    response = perfgate.request("POST", "/v1/traces", b"{\"resourceSpans\": 5}", {"Content-Type": "application/json"})
    assert response.status == 400 and response.json()["message"] == "resourceSpans must be an array"
    response = perfgate.request("POST", "/v1/traces", b"x", {"Content-Type": "text/plain"})
    assert response.status == 415 and "application/x-protobuf or application/json" in response.json()["message"]


def test_spans_acknowledged_before_a_sigkill_wait_for_their_root_across_the_restart(perfgate):
    start = time.time_ns() - 30_000_000_000
    trace_id, root_id = bytes(range(16, 32)), b"\x00" * 7 + b"\x09"
    children = [
        otlp_span(trace_id, b"\x00" * 7 + b"\x0a", "backend_fetch", start, start + 2_500_000_000, parent=root_id,
                  attributes={"gen_ai.provider.name": "portkey", "gen_ai.request.model": "claude-3"}),
        otlp_span(trace_id, b"\x00" * 7 + b"\x0b", "stream_processing", start, start + 700_000_000, parent=root_id),
    ]
    assert export(perfgate, children[:1]).status == 200
    assert export(perfgate, children[1:]).status == 200
    assert value(perfgate.metrics_text(), "perfgate_otlp_waiting_traces") == Decimal("1")
    perfgate.stop(signal.SIGKILL)
    perfgate.start()
    text = perfgate.metrics_text()
    assert value(text, "backend_ttfb_seconds_count", provider="portkey", model="claude-3", endpoint="/chat") is None
    assert value(text, "perfgate_otlp_waiting_traces") == Decimal("1")
    root = otlp_span(trace_id, root_id, "POST /chat", start, start + 3_300_000_000, attributes={"http.route": "/chat"})
    assert export(perfgate, [root]).status == 200
    text = perfgate.metrics_text()
    assert value(text, "backend_ttfb_seconds_sum", provider="portkey", model="claude-3", endpoint="/chat") == Decimal("2.5")
    assert value(text, "streaming_duration_seconds_sum", provider="portkey", model="claude-3", endpoint="/chat") == Decimal("0.7")
    assert value(text, "perfgate_otlp_waiting_traces") == Decimal("0")


def varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def ld(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def nested_unknown(depth):
    """An unknown field of an unknown field of ... `depth` deep: skipped without descending."""
    body = b"x"
    for _ in range(depth):
        body = ld(15, body)
    return body


SPAN_OK = ld(1, bytes(range(1, 17))) + ld(2, bytes(range(1, 9))) + ld(5, b"backend_fetch")
X = {"Content-Type": "application/x-protobuf"}
J = {"Content-Type": "application/json"}
# (case, headers, body, status, words the google.rpc.Status message must contain)
HOSTILE = [
    ("truncated varint", X, b"\x0a\xff\xff", 400, "the message ends inside a varint at byte 1"),
    ("varint of eleven bytes", X, b"\x10" + b"\xff" * 10 + b"\x01", 400, "a varint is longer than 64 bits at byte 1"),
    ("length past the end", X, b"\x0a\xff\xff\xff\xff\x0f", 400, "runs past the end of its message"),
    ("length past its parent", X, ld(1, ld(2, b"\x12\x7f" + b"s" * 3)), 400, "a length of 127 bytes runs past the end of its message (3 bytes left)"),
    ("wrong wire type for resource_spans", X, b"\x09" + b"\x00" * 8, 400, "ExportTraceServiceRequest field 1 must be length-delimited, got fixed64"),
    ("wrong wire type for a span's start", X, ld(1, ld(2, ld(2, SPAN_OK + b"\x3a\x00"))), 400, "Span field 7 must be fixed64, got length-delimited"),
    ("start group", X, b"\x0b", 400, "field 1 has wire type 3, which OTLP does not use"),
    ("field number zero", X, b"\x02\x00", 400, "field number 0 is out of range"),
    ("fixed64 cut short", X, ld(1, ld(2, ld(2, SPAN_OK + b"\x39\x01\x02"))), 400, "the message ends inside a fixed64 value"),
    ("attribute perfgate reads not UTF-8", X, ld(1, ld(2, ld(2, SPAN_OK + ld(9, ld(1, b"http.route") + ld(2, ld(1, b"\xc3\x28")))))), 400, "a string field is not valid UTF-8"),
    # A span's name is read only when it is a seed stage's: any other, even not UTF-8, is passed over.
    ("span name not UTF-8", X, ld(1, ld(2, ld(2, SPAN_OK + ld(5, b"\xc3\x28")))), 200, ""),
    ("deep unknown nesting", X, ld(1, nested_unknown(20000)), 200, ""),
    ("deep JSON nesting", J, b'{"resourceSpans": ' + b"[" * 100000, 400, "resourceSpans[0] must be an object"),
    ("deep JSON nesting where perfgate skips", J, b'{"resourceSpans": [], "x": ' + b"[" * 100000, 400, "nesting deeper than 64 levels"),
    ("JSON that is an array", J, b"[]", 400, "the body must be a JSON object with resourceSpans"),
    ("JSON span id a number", J, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": 1}]}]}]}', 400, "spans[0].spanId must be a string of hex digits"),
    ("JSON time with a fraction", J, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"endTimeUnixNano": 0.5}]}]}]}', 400, "endTimeUnixNano must be a whole number"),
    ("JSON time of 20 digits", J, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"endTimeUnixNano": "12345678901234567890"}]}]}]}', 400, "or a string of at most 19 digits"),
    ("gzip that is not gzip", {**X, "Content-Encoding": "gzip"}, b"plain", 400, "Content-Encoding is gzip but"),
    ("gzip bomb", {**X, "Content-Encoding": "gzip"}, gzip.compress(b"\x00" * (80 * 1024 * 1024)), 413, "inflates to more than"),
    ("form body", {"Content-Type": "application/x-www-form-urlencoded"}, b"a=b", 415, "OTLP/HTTP sends application/x-protobuf or application/json"),
    ("no content type", {}, SPAN_OK, 415, "Content-Type (none) is not accepted"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_exports_get_a_status_that_says_where_and_change_nothing(perfgate, case):
    name, headers, body, status, words = case
    before = histograms(perfgate)
    response = perfgate.request("POST", "/v1/traces", body, headers, timeout=30)
    assert response.status == status, f"{name}: {response.status} {response.body[:300]!r}"
    if status != 200:
        if response.headers["Content-Type"] == "application/x-protobuf":
            message = status_pb2.Status.FromString(response.body).message
        else:
            message = response.json()["message"]
        assert words in message, f"{name}: {message!r}"
    assert perfgate.get("/healthz").status == 200
    assert histograms(perfgate) == before
