"""The README's OpenTelemetry snippets, run as written, against the real binary.

README.md's section "## OpenTelemetry (OTLP): `POST /v1/traces`" holds two Flask apps, each a
```python block whose first line names its file (`# gateway.py: ...`, `# stages.py: ...`), and the
exporter's environment, a ```sh block. Their text is read from README.md when the tests run (never
copied here), so an edit to the README is what is tested:

- each snippet is written to a folder of its own under its name and served by `python -m flask
  --app <name> run` on 127.0.0.1, in front of the seeded fake OpenAI backend (fake_openai.py), with
  OPENAI_BASE_URL/OPENAI_API_KEY for the SDK and the README's OTEL_EXPORTER_OTLP_* variables, the
  host and port replaced by the test's perfgate and `<ingest token>` by a token perfgate was
  started with (`--tokens-file`), plus OTEL_BSP_SCHEDULE_DELAY=200 so that exports split traces;
- streaming and non-streaming chat completions go through the app from http.client, the first
  alone, then four at a time, each read to its end (the client records when the first SSE event
  and the end came);
- once the expected events show in /metrics (polled, 15 s at most), the app is stopped with SIGINT:
  the SDK's TracerProvider flushes its BatchSpanProcessor at exit (SIGTERM would kill the process
  without flushing), so the final /metrics holds every span the app produced.

What perfgate's sums are compared with: the backend's own delays, drawn from a seeded generator and
recorded per request by the fake backend. That is the most direct independent measure of what
`backend_ttfb_seconds` and `streaming_duration_seconds` claim to be (the backend's time to its first
chunk, then the rest of its stream), and it is known without any of the spans perfgate reads. It
leaves out only what the app itself does inside the spans (the SDK building the request, loopback
transfer, parsing), a few ms a request against 0.4-1.2 s (TTFB) and 0.3-1.5 s (streams): perfgate's
TTFB must hold the backend's whole wait, and be within 5% of it. The client's own timings hold the
gateway's work as well (Flask, the relay); they are printed beside, and must contain perfgate's.
"""

import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from exposition import value
from fake_openai import FakeOpenAI
from server_process import ServerProcess, free_port
from test_otel_instrumentation import (assert_events, assert_nothing_lost, close, endpoint_series, histogram,
                                       otlp_summary, total)

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "## OpenTelemetry (OTLP): `POST /v1/traces`"
CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Say hello."}]
INGEST = "ingest-readme-otlp-5f1c2a9e0b7d4e36"
READ = "read-readme-otlp-9a8c7b6d5e4f3a21"
# Backend delays in seconds, drawn per request from a seeded generator (fake_openai.Schedule).
# The time to first chunk is long enough that the app's own work inside the span (the SDK building
# the request and, in stages.py, parsing the first chunk: a few ms, more on a loaded machine) stays
# well within 5% of the backend's delay.
BACKEND = {"first_chunk": (0.4, 1.2), "stream": (0.3, 1.5), "delay": (0.4, 1.2)}
REQUESTS = 10
CONCURRENCY = 4
SETTLE_TIMEOUT = 15.0


# The README, read when the tests run.

def readme_section():
    text = README.read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start:] if end == -1 else text[start:end]


def code_blocks(text, language):
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def snippet(name):
    """The ```python block of the section whose first line is `# <name>.py: ...`."""
    found = [block for block in code_blocks(readme_section(), "python") if block.startswith(f"# {name}.py:")]
    assert len(found) == 1, f"README.md: {len(found)} ```python blocks starting with '# {name}.py:', wanted 1"
    return found[0]


def exporter_env(perfgate_base, token):
    """The section's ```sh block of OTEL_EXPORTER_OTLP_* assignments, read as a shell would (quotes
    and trailing comments removed), perfgate's host and port put in the endpoint and the token in
    place of `<ingest token>`."""
    blocks = [block for block in code_blocks(readme_section(), "sh") if "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" in block]
    assert len(blocks) == 1, f"README.md: {len(blocks)} ```sh blocks setting OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    env = {}
    for line in blocks[0].splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert len(words) == 1 and "=" in words[0], f"not one NAME=value assignment: {line!r}"
        name, assigned = words[0].split("=", 1)
        env[name] = assigned
    assert set(env) == {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                        "OTEL_EXPORTER_OTLP_HEADERS"}, sorted(env)
    endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
    assert endpoint.path == "/v1/traces", env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    ours = urlsplit(perfgate_base)
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = endpoint._replace(scheme=ours.scheme, netloc=ours.netloc).geturl()
    assert "<ingest token>" in env["OTEL_EXPORTER_OTLP_HEADERS"], env["OTEL_EXPORTER_OTLP_HEADERS"]
    env["OTEL_EXPORTER_OTLP_HEADERS"] = env["OTEL_EXPORTER_OTLP_HEADERS"].replace("<ingest token>", token)
    return env


# perfgate with tokens, and the snippet apps.

class Metrics:
    """perfgate's /metrics, read with a read token."""

    def __init__(self, server):
        self.server = server

    def text(self):
        response = self.server.get("/metrics", headers={"Authorization": f"Bearer {READ}"})
        assert response.status == 200, (response.status, response.body[:200])
        return response.text


@pytest.fixture
def perfgate_with_tokens(make_perfgate, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ingest {INGEST}\nread {READ}\n")
    return make_perfgate(args=["--tokens-file", str(tokens)]).start()


class SnippetApp(ServerProcess):
    """One README snippet as <name>.py in its own folder, served by `python -m flask run`."""

    def __init__(self, workdir, name, backend, perfgate_base):
        self.name = name
        folder = Path(workdir) / name
        folder.mkdir()
        (folder / f"{name}.py").write_text(snippet(name))
        port = free_port()
        # Only the variables the README names (and the SDK's) reach the app: none of this process's
        # OTEL_*, OPENAI_*, FLASK_* or proxy settings.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OTEL_", "OPENAI_", "FLASK_")) and "proxy" not in k.lower()}
        env.update(exporter_env(perfgate_base, INGEST))
        env.update(OPENAI_BASE_URL=backend.base_url, OPENAI_API_KEY="sk-fake",
                   OTEL_BSP_SCHEDULE_DELAY="200", OTEL_SERVICE_NAME=f"readme-{name}")
        super().__init__([sys.executable, "-m", "flask", "--app", name, "run", "--host", "127.0.0.1", "--port", port],
                         port, None, folder / "app.log", cwd=folder, env=env)

    def start(self, timeout=60):
        # Ready when the port accepts a connection: an HTTP probe would be traced by the app and
        # reach perfgate as a trace of its own.
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the app did not listen within {timeout}s:\n{self.log_path.read_text()}")

    def stop_and_flush(self):
        """SIGINT: Flask's server stops, and the TracerProvider's exit handler flushes its spans."""
        code = self.stop(signal.SIGINT, timeout=30)
        assert code == 0, f"the app exited with {code} on SIGINT:\n{self.log_tail()}"

    def log_tail(self, chars=3000):
        return self.log_path.read_text()[-chars:]


@pytest.fixture
def start_snippet(tmp_path):
    apps = []

    def start(name, backend, perfgate):
        app = SnippetApp(tmp_path, name, backend, perfgate.base)
        apps.append(app)
        return app.start()

    yield start
    for app in apps:
        app.stop(signal.SIGKILL)


# Driving requests and reading the answers.

def one_request(port, model, stream):
    """POST one chat completion; (seconds to the first SSE event or None, seconds to the end, events)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        started = time.perf_counter()
        connection.request("POST", CHAT, json.dumps({"model": model, "messages": MESSAGES, "stream": stream}),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200, (response.status, response.read()[:500])
        if not stream:
            answer = json.loads(response.read())
            return None, time.perf_counter() - started, [answer]
        first, events = None, []
        while line := response.readline():
            if line.startswith(b"data: "):
                if first is None:
                    first = time.perf_counter() - started
                events.append(json.loads(line[6:]))
        return first, time.perf_counter() - started, events
    finally:
        connection.close()


def drive(app, model, stream, count=REQUESTS):
    """One request alone (it pays for the app's lazy imports once, not under four requests at once),
    then the rest CONCURRENCY at a time."""
    results = [one_request(app.port, model, stream)]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results += pool.map(lambda _: one_request(app.port, model, stream), range(count - 1))
    for _, _, events in results:
        assert events, "no answer"
        assert all(e["model"] == model + "-2024-07-18" for e in events), events[0]
        if stream:
            assert events[-1]["choices"][0]["finish_reason"] == "stop", events[-1]
    return results


def served(backend, stream, count):
    """The backend's records of the requests it answered (appended just after each answer ends)."""
    deadline = time.monotonic() + 5
    while len(backend.served) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    records = backend.served
    assert len(records) == count and all(r["stream"] == stream for r in records), records
    return records


def settle(metrics, endpoint, count, families):
    """Waits (15 s at most) until each family's _count for the endpoint reaches `count`: the spans
    came with the BatchSpanProcessor's scheduled exports. True if they all did."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        text = metrics.text()
        counts = [sum(c for c, _ in endpoint_series(text, family, endpoint).values()) for family in families]
        if all(c >= count for c in counts):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def final_metrics(app, metrics):
    """/metrics once the app has stopped and flushed every span it held."""
    app.stop_and_flush()
    time.sleep(0.3)
    text = metrics.text()
    if total(text, "perfgate_otlp_spans_received_total") == 0:
        source = snippet(app.name)
        hint = "" if "set_tracer_provider" in source else (
            f" ({app.name}.py sets no TracerProvider: without one, trace.get_tracer() is a no-op and nothing"
            " is exported)")
        if "instrument_app" not in source and "FlaskInstrumentor().instrument(" not in source:
            hint += f" ({app.name}.py does not instrument Flask: no server span, no http.route)"
        raise AssertionError(f"perfgate received no spans from the README's {app.name}.py{hint}; "
                             f"app log:\n{app.log_tail()}")
    return text


def backend_series(text, family, provider, model, count):
    """The family's one series for CHAT, labelled provider/model, with `count` observations; its sum."""
    found = endpoint_series(text, family, CHAT)
    labels = (("model", model), ("provider", provider))
    assert list(found) == [labels], f"{family}: series {list(found)}, wanted provider={provider}, model={model}"
    observed_count, observed_sum = found[labels]
    assert observed_count == count, f"{family}_count {observed_count} for {count} requests; {otlp_summary(text)}"
    return observed_sum


def seconds(values):
    return sum((Decimal(repr(v)) for v in values), Decimal(0))


def run(start_snippet, perfgate, name, seed, model, stream):
    """The snippet in front of a fresh backend: REQUESTS requests; (client results, backend records,
    whether the events showed before the app stopped, final /metrics)."""
    metrics = Metrics(perfgate)
    with FakeOpenAI(seed=seed, **BACKEND) as backend:
        app = start_snippet(name, backend, perfgate)
        results = drive(app, model, stream)
        records = served(backend, stream, REQUESTS)
        families = ["frontend_processing_seconds", "backend_ttfb_seconds"]
        settled = settle(metrics, CHAT, REQUESTS, families + ["streaming_duration_seconds"] if stream else families)
        text = final_metrics(app, metrics)
    return results, records, settled, text


def assert_one_event_each(text, stages):
    assert_events(text, CHAT, REQUESTS, stages)
    assert value(text, "perfgate_otlp_traces_total", outcome="event") == REQUESTS, otlp_summary(text)
    assert_nothing_lost(text)


def assert_stream_timings(text, provider, model, records, results):
    """TTFB and stream sums within 5% of the backend's delays; the TTFB holds the backend's whole
    wait, and the client, around it all, saw more."""
    ttfb = backend_series(text, "backend_ttfb_seconds", provider, model, REQUESTS)
    streaming = backend_series(text, "streaming_duration_seconds", provider, model, REQUESTS)
    first_chunk = seconds(r["first_chunk_delay"] for r in records)
    close(ttfb, first_chunk, "backend_ttfb_seconds_sum vs the backend's first-chunk delays")
    close(streaming, seconds(r["stream_duration"] for r in records),
          "streaming_duration_seconds_sum vs the backend's stream durations")
    assert ttfb >= first_chunk, f"TTFB {ttfb} s is less than the backend waited, {first_chunk} s"
    client_first = seconds(first for first, _, _ in results)
    client_total = seconds(end for _, end, _ in results)
    print(f"TTFB: perfgate {ttfb:.6f} s, the client's first SSE events {client_first:.6f} s "
          f"({(ttfb - client_first) / client_first * 100:+.2f}%)")
    print(f"TTFB + stream: perfgate {ttfb + streaming:.6f} s, the client's requests {client_total:.6f} s "
          f"({(ttfb + streaming - client_total) / client_total * 100:+.2f}%)")
    assert ttfb < client_first and ttfb + streaming < client_total, "the backend's time is within the client's"


SETTLED = "every event showed with the scheduled exports, before the app's exit flushed the rest"


# The tests.

def test_readme_gateway_streaming(perfgate_with_tokens, start_snippet):
    """gateway.py, stream=true: one event per request labelled by the OpenAI instrumentation
    (provider "openai", the model asked for), the TTFB ending at the httpx span (the response head,
    sent with the first chunk) and the stream the rest of the gen_ai span, which ends after the
    Flask server span (the root)."""
    model = "gpt-4o-mini"
    results, records, settled, text = run(start_snippet, perfgate_with_tokens, "gateway", 7321, model, stream=True)
    assert_one_event_each(text, {"backend_fetch", "stream_processing"})
    assert_stream_timings(text, "openai", model, records, results)
    _, frontend = histogram(text, "frontend_processing_seconds", endpoint=CHAT)
    assert Decimal(0) < frontend < Decimal("0.05") * REQUESTS, f"frontend_processing_seconds_sum {frontend}"
    assert settled, SETTLED


def test_readme_gateway_not_streaming(perfgate_with_tokens, start_snippet):
    """gateway.py, stream=false: the answer's head comes when the backend is done, so the TTFB is its
    whole delay and the "stream" is the body's short transfer."""
    model = "gpt-4.1-nano"
    results, records, settled, text = run(start_snippet, perfgate_with_tokens, "gateway", 4409, model, stream=False)
    assert_one_event_each(text, {"backend_fetch", "stream_processing"})
    ttfb = backend_series(text, "backend_ttfb_seconds", "openai", model, REQUESTS)
    transfer = backend_series(text, "streaming_duration_seconds", "openai", model, REQUESTS)
    expected = seconds(r["delay"] for r in records)
    close(ttfb, expected, "backend_ttfb_seconds_sum vs the backend's answer delays")
    assert ttfb >= expected, f"TTFB {ttfb} s is less than the backend waited, {expected} s"
    # The "stream" of a whole answer is its body's transfer after the head. The fake backend writes
    # the head and the body in two writes, so on a kept-alive connection the body waits for the
    # client's delayed ACK (Nagle's algorithm): about 40 ms a request, a real wait the SDK sees too.
    # Small means: every answer under 0.1 s, 50 ms on average.
    print(f"streaming_duration_seconds_sum (the bodies' transfer): {transfer:.6f} s "
          f"({transfer / expected * 100:.2f}% of the answer delays)")
    under = value(text, "streaming_duration_seconds_bucket", provider="openai", model=model, endpoint=CHAT, le="0.1")
    assert under == REQUESTS, f"{under} of {REQUESTS} transfers took under 0.1 s"
    assert transfer < Decimal("0.05") * REQUESTS, f"a whole answer's transfer is short: {transfer} s in all"
    client_total = seconds(end for _, end, _ in results)
    print(f"TTFB + transfer: perfgate {ttfb + transfer:.6f} s, the client's requests {client_total:.6f} s")
    assert ttfb + transfer < client_total, "the backend's time is within the client's"
    assert settled, SETTLED


def test_readme_stages_streaming(perfgate_with_tokens, start_snippet):
    """stages.py, stream=true: the named spans are the stages (request_parsing, backend_fetch and
    the generator's llm.stream as stream_processing), the labels perfgate.provider "openrouter" and
    perfgate.model; backend_fetch waits for the first chunk, so it is the TTFB, and the stream
    span, started in the generator under the view's attached context after the root ended, is the
    stream."""
    model = "openai/gpt-4o-mini"
    results, records, settled, text = run(start_snippet, perfgate_with_tokens, "stages", 9157, model, stream=True)
    assert_one_event_each(text, {"request_parsing", "backend_fetch", "stream_processing"})
    assert_stream_timings(text, "openrouter", model, records, results)
    assert settled, SETTLED
