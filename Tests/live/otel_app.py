"""A small LLM gateway (Flask or FastAPI) calling an OpenAI-compatible backend through the real
`openai` SDK, traced by the stock OpenTelemetry instrumentation packages, unmodified.

Run as a process:

    python otel_app.py --framework flask|fastapi --port P --backend-url http://127.0.0.1:Q/v1
        --instrument server,openai,httpx --exporter otlp --endpoint http://127.0.0.1:R/v1/traces
        --processor batch|simple [--schedule-delay-ms 200]

`--exporter memory` keeps spans in an InMemorySpanExporter instead; GET /_spans shows them (with
`--keep-spans`, an OTLP-exporting app keeps a copy there too).
Semantic-convention opt-ins (OTEL_SEMCONV_STABILITY_OPT_IN) come from the environment as usual.

Routes (each traced request records what the app itself measured, read back at /_measurements):
- POST /v1/chat/completions {"model", "stream", "messages"}: relays the backend's answer; for a
  stream, the view waits for the first chunk, then the chunks are relayed as SSE as they arrive.
  Measured around the SDK calls:
  `ttfb` = from calling `create` to the first chunk out of the SDK's iterator (non-streamed: to
  `create` returning), `streaming` = from the first chunk to the iterator's end (None when not
  streamed).
- Flask only, the README's stage-span pattern in a streaming generator, three ways:
  /v1/staged/naive/chat/completions (a span started in the generator: no parent, the pitfall),
  /v1/staged/attached/chat/completions (the view's context attached in the generator) and
  /v1/staged/stream_with_context/chat/completions (Flask's stream_with_context).
  Measured: `ttfb` = `backend_fetch`'s time (create to first chunk), `streaming` = the relay's.
- Flask only, /v1/genai-util/chat/completions: the backend call traced by hand with
  opentelemetry-util-genai's TelemetryHandler and SyncStreamWrapper (run the app without the
  openai instrumentation for this route), which record gen_ai.response.time_to_first_chunk.
Untraced service routes: GET /_health, GET /_measurements, POST /_flush (force_flush), GET /_spans.
"""

import argparse
import json
import threading
import time

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXCLUDED = "_health,_measurements,_flush,_spans"
MESSAGES = [{"role": "user", "content": "Say hello."}]


class Measurements:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, **item):
        with self.lock:
            self.items.append(item)

    def all(self):
        with self.lock:
            return list(self.items)


def span_json(span):
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "parent_remote": bool(parent and parent.is_remote),
        "start": span.start_time,
        "end": span.end_time,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "attributes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in (span.attributes or {}).items()},
        "events": [{"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})} for e in span.events],
    }


def set_up_tracing(args):
    provider = TracerProvider(resource=Resource.create({"service.name": f"otel-app-{args.framework}"}))
    memory = None
    if args.exporter == "memory":
        memory = InMemorySpanExporter()
        exporter = memory
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=args.endpoint, timeout=10)
        if args.keep_spans:
            # A copy of every span for the test to compare with (GET /_spans).
            memory = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(memory))
    if args.processor == "batch":
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=args.schedule_delay_ms))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    instrument = set(filter(None, args.instrument.split(",")))
    if "openai" in instrument:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
    if "httpx" in instrument:
        # openai >= 3 sends with httpx2, which has its own instrumentor in the same package.
        from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor

        HTTPX2ClientInstrumentor().instrument(tracer_provider=provider)
        HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    return provider, memory, instrument


def flask_app(args, provider, memory, instrument, measurements):
    import flask
    import openai

    from opentelemetry.util.genai.handler import TelemetryHandler
    from opentelemetry.util.genai.stream import SyncStreamWrapper

    class GenAIStream(SyncStreamWrapper):
        def _process_chunk(self, chunk):
            if chunk.model:
                self._self_invocation.response_model_name = chunk.model

        def _on_stream_end(self):
            self._self_invocation.stop()

        def _on_stream_error(self, error):
            self._self_invocation.fail(error)

    app = flask.Flask(__name__)
    client = openai.OpenAI(base_url=args.backend_url, api_key="sk-fake", max_retries=0, timeout=60)
    tracer = trace.get_tracer("gateway")
    genai_handler = TelemetryHandler(tracer_provider=provider)

    @app.post("/v1/chat/completions")
    def chat():
        body = flask.request.get_json()
        request_id = flask.request.headers.get("x-request-id")
        model = body["model"]
        started = time.perf_counter()
        if not body.get("stream"):
            completion = client.chat.completions.create(model=model, messages=MESSAGES)
            measurements.add(id=request_id, route="/v1/chat/completions", stream=False,
                             ttfb=time.perf_counter() - started, streaming=None)
            return flask.jsonify(completion.model_dump())
        # The first chunk is awaited in the view (a gateway answers a backend error with a status
        # of its own before committing to a stream), the rest relayed as they arrive.
        stream = iter(client.chat.completions.create(model=model, messages=MESSAGES, stream=True))
        first_chunk = next(stream)
        first = time.perf_counter()

        def relay():
            yield "data: " + first_chunk.model_dump_json() + "\n\n"
            for chunk in stream:
                yield "data: " + chunk.model_dump_json() + "\n\n"
            end = time.perf_counter()
            measurements.add(id=request_id, route="/v1/chat/completions", stream=True,
                             ttfb=first - started, streaming=end - first)
            yield "data: [DONE]\n\n"

        return flask.Response(relay(), mimetype="text/event-stream")

    def staged(variant):
        # The README's snippet, in a Flask view that streams.
        body = flask.request.get_json()
        request_id = flask.request.headers.get("x-request-id")
        with tracer.start_as_current_span("request_parsing"):
            model = body["model"]
        started = time.perf_counter()
        with tracer.start_as_current_span("backend_fetch", attributes={
            "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
        }):
            stream = client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
            iterator = iter(stream)
            first_chunk = next(iterator)
        first = time.perf_counter()
        view_context = otel_context.get_current()
        route = flask.request.url_rule.rule

        def relay():
            token = otel_context.attach(view_context) if variant == "attached" else None
            try:
                with tracer.start_as_current_span("llm.stream", attributes={"perfgate.stage": "stream_processing"}):
                    yield "data: " + first_chunk.model_dump_json() + "\n\n"
                    for chunk in iterator:
                        yield "data: " + chunk.model_dump_json() + "\n\n"
                    end = time.perf_counter()
            finally:
                if token is not None:
                    otel_context.detach(token)
            measurements.add(id=request_id, route=route, stream=True, ttfb=first - started, streaming=end - first)
            yield "data: [DONE]\n\n"

        if variant == "stream_with_context":
            return flask.Response(flask.stream_with_context(relay()), mimetype="text/event-stream")
        return flask.Response(relay(), mimetype="text/event-stream")

    @app.post("/v1/genai-util/chat/completions")
    def genai_util():
        # The backend call instrumented by hand with opentelemetry-util-genai, the library the GenAI
        # instrumentations are built on: its stream wrapper records gen_ai.request.stream and
        # gen_ai.response.time_to_first_chunk (openai-v2 2.4b0's own wrapper records neither).
        body = flask.request.get_json()
        request_id = flask.request.headers.get("x-request-id")
        model = body["model"]
        started = time.perf_counter()
        invocation = genai_handler.inference("openai", request_model=model, server_address="127.0.0.1",
                                             server_port=int(args.backend_url.split(":")[2].split("/")[0]))
        stream = GenAIStream(client.chat.completions.create(model=model, messages=MESSAGES, stream=True), invocation)

        def relay():
            first = None
            for chunk in stream:
                if first is None:
                    first = time.perf_counter()
                yield "data: " + chunk.model_dump_json() + "\n\n"
            end = time.perf_counter()
            measurements.add(id=request_id, route="/v1/genai-util/chat/completions", stream=True,
                             ttfb=first - started, streaming=end - first)
            yield "data: [DONE]\n\n"

        return flask.Response(relay(), mimetype="text/event-stream")

    for variant in ("naive", "attached", "stream_with_context"):
        app.add_url_rule(f"/v1/staged/{variant}/chat/completions", f"staged_{variant}",
                         lambda variant=variant: staged(variant), methods=["POST"])

    add_service_routes_flask(app, flask, provider, memory, measurements)
    if "server" in instrument:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app, tracer_provider=provider, excluded_urls=EXCLUDED)
    return app


def add_service_routes_flask(app, flask, provider, memory, measurements):
    @app.get("/_health")
    def health():
        return "ok"

    @app.get("/_measurements")
    def measured():
        return flask.jsonify(measurements.all())

    @app.post("/_flush")
    def flush():
        return flask.jsonify({"flushed": provider.force_flush(30_000)})

    @app.get("/_spans")
    def spans():
        return flask.jsonify([span_json(s) for s in memory.get_finished_spans()] if memory else [])


def fastapi_app(args, provider, memory, instrument, measurements):
    import fastapi
    import openai
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

    app = fastapi.FastAPI()
    client = openai.AsyncOpenAI(base_url=args.backend_url, api_key="sk-fake", max_retries=0, timeout=60)

    @app.post("/v1/chat/completions")
    async def chat(request: fastapi.Request):
        body = await request.json()
        request_id = request.headers.get("x-request-id")
        model = body["model"]
        started = time.perf_counter()
        if not body.get("stream"):
            completion = await client.chat.completions.create(model=model, messages=MESSAGES)
            measurements.add(id=request_id, route="/v1/chat/completions", stream=False,
                             ttfb=time.perf_counter() - started, streaming=None)
            return JSONResponse(completion.model_dump())
        # As in the Flask app: the first chunk awaited in the view, the rest relayed.
        stream = (await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)).__aiter__()
        first_chunk = await stream.__anext__()
        first = time.perf_counter()

        async def relay():
            yield "data: " + first_chunk.model_dump_json() + "\n\n"
            async for chunk in stream:
                yield "data: " + chunk.model_dump_json() + "\n\n"
            end = time.perf_counter()
            measurements.add(id=request_id, route="/v1/chat/completions", stream=True,
                             ttfb=first - started, streaming=end - first)
            yield "data: [DONE]\n\n"

        return StreamingResponse(relay(), media_type="text/event-stream")

    @app.get("/_health")
    async def health():
        return PlainTextResponse("ok")

    @app.get("/_measurements")
    async def measured():
        return JSONResponse(measurements.all())

    @app.post("/_flush")
    def flush():
        return JSONResponse({"flushed": provider.force_flush(30_000)})

    @app.get("/_spans")
    async def spans():
        return JSONResponse([span_json(s) for s in memory.get_finished_spans()] if memory else [])

    if "server" in instrument:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=EXCLUDED)
    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", choices=("flask", "fastapi"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend-url", required=True)
    parser.add_argument("--instrument", default="server,openai,httpx")
    parser.add_argument("--exporter", choices=("otlp", "memory"), default="otlp")
    parser.add_argument("--endpoint")
    parser.add_argument("--processor", choices=("batch", "simple"), default="batch")
    parser.add_argument("--schedule-delay-ms", type=int, default=200)
    parser.add_argument("--keep-spans", action="store_true", help="with --exporter otlp, also keep spans for /_spans")
    args = parser.parse_args()
    provider, memory, instrument = set_up_tracing(args)
    measurements = Measurements()
    if args.framework == "flask":
        from werkzeug.serving import make_server

        app = flask_app(args, provider, memory, instrument, measurements)
        make_server("127.0.0.1", args.port, app, threaded=True).serve_forever()
    else:
        import uvicorn

        app = fastapi_app(args, provider, memory, instrument, measurements)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
