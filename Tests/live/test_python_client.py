"""The Python client (clients/python) against a live perfgate: the seed's instrumentation
snippets, a server that is down and comes back, a full queue, retries under one key."""

import asyncio
import http.server
import json
import threading
import time
from types import SimpleNamespace

from exposition import value

# The seed's snippets import from src.utils.performance_tracker; this is the one line changed.
from perfgate import PerformanceTracker, Sender, track_request_stages

CHAT = "/v1/chat/completions"


# -- stand-ins for the seed's application functions --------------------------------------------

async def validate_api_key(api_key):
    await asyncio.sleep(0.001)
    return {"key": api_key}


def prepare_headers(api_key):
    return {"Authorization": f"Bearer {api_key}"}


async def make_backend_request(messages, model, headers):
    await asyncio.sleep(0.2)
    return ["Hello", " world", "!"]


async def stream_response(response):
    for chunk in response:
        await asyncio.sleep(0.05)
        yield chunk


async def make_request(*args):
    await asyncio.sleep(0.1)
    return "done"


def make_seed_handlers(PerformanceTracker, track_request_stages):
    """The seed's two handlers, as written there (without the FastAPI decorators and dependencies).
    One change: the seed's `return response` sits in an async generator, which Python does not
    allow; it yields the response instead."""

    async def chat_completions(req, api_key):
        tracker = PerformanceTracker(endpoint="/v1/chat/completions")

        # Track request parsing
        with tracker.stage("request_parsing"):
            # Parse and validate request
            messages = req.messages
            model = req.model

        # Track auth validation
        with tracker.stage("auth_validation"):
            user = await validate_api_key(api_key)

        # Track request preparation
        with tracker.stage("request_preparation"):
            # Prepare request for backend
            headers = prepare_headers(api_key)

        # Track backend request (TTFB)
        with tracker.backend_request(provider="openrouter", model=model):
            response = await make_backend_request(messages, model, headers)

        # Track streaming (if applicable)
        if req.stream:
            with tracker.streaming():
                async for chunk in stream_response(response):
                    yield chunk
        else:
            yield response

        # Record percentages
        tracker.record_percentages()

    async def unified_responses(req, api_key):
        with track_request_stages("/v1/responses") as tracker:
            with tracker.stage("request_parsing"):
                # parse request
                pass

            with tracker.backend_request(provider="portkey", model=req.model):
                # make backend request
                response = await make_request()

            # Percentages are automatically recorded when context exits
        return response

    return chat_completions, unified_responses


def test_the_seed_snippets_produce_the_seed_series(perfgate):
    sender = Sender(perfgate.base, flush_interval=0.1)
    chat_completions, unified_responses = make_seed_handlers(
        lambda endpoint: PerformanceTracker(endpoint=endpoint, sender=sender),
        lambda endpoint: track_request_stages(endpoint, sender=sender),
    )

    async def serve():
        for stream in (True, True, False):
            req = SimpleNamespace(messages=[{"role": "user", "content": "hi"}], model="gpt-4o", stream=stream)
            chunks = [chunk async for chunk in chat_completions(req, "key")]
            assert chunks == (["Hello", " world", "!"] if stream else [["Hello", " world", "!"]])
        for _ in range(2):
            assert await unified_responses(SimpleNamespace(model="claude-3"), "key") == "done"

    asyncio.run(serve())
    assert sender.flush(10)
    assert sender.stats() == {"sent": 5, "dropped": 0, "rejected": 0, "retries": 0}

    text = perfgate.metrics_text()
    chat = {"provider": "openrouter", "model": "gpt-4o", "endpoint": CHAT}
    assert value(text, "backend_ttfb_seconds_count", **chat) == 3
    assert 0.6 <= value(text, "backend_ttfb_seconds_sum", **chat) < 1.5
    assert value(text, "streaming_duration_seconds_count", **chat) == 2
    assert 0.3 <= value(text, "streaming_duration_seconds_sum", **chat) < 1.0
    assert value(text, "frontend_processing_seconds_count", endpoint=CHAT) == 3
    for stage in ("request_parsing", "auth_validation", "request_preparation", "backend_fetch", "stream_processing"):
        assert value(text, "request_stage_duration_seconds_count", stage=stage, endpoint=CHAT) == (2 if stage == "stream_processing" else 3)
    shares = [value(text, "stage_percentage", stage=s, endpoint=CHAT) for s in ("frontend_processing", "backend_response", "stream_processing")]
    assert sum(shares) == __import__("pytest").approx(100) and shares[1] > shares[0]
    portkey = {"provider": "portkey", "model": "claude-3", "endpoint": "/v1/responses"}
    assert value(text, "backend_ttfb_seconds_count", **portkey) == 2
    assert value(text, "request_stage_duration_seconds_count", stage="request_parsing", endpoint="/v1/responses") == 2
    sender.close()


def test_sync_code_and_stream_wrappers(perfgate):
    sender = Sender(perfgate.base, flush_interval=0.1)
    tracker = PerformanceTracker("/sync", sender=sender)
    with tracker.stage("request_parsing"):
        pass
    with tracker.stage("request_parsing"):  # entered twice: the times add up
        pass
    with tracker.backend_request(provider="p", model="m"):
        time.sleep(0.05)
    chunks = list(tracker.stream(iter(["a", "b"])))
    assert chunks == ["a", "b"] and set(tracker.stages) == {"request_parsing", "backend_fetch", "stream_processing"}
    tracker.record_percentages()
    tracker.record_percentages()  # once only

    # A tracker dropped without record_percentages() is sent when collected.
    dropped = PerformanceTracker("/dropped", sender=sender)
    with dropped.backend_request(provider="p", model="m"):
        pass
    del dropped
    assert sender.flush(10)
    text = perfgate.metrics_text()
    assert value(text, "backend_ttfb_seconds_count", provider="p", model="m", endpoint="/sync") == 1
    assert value(text, "request_stage_duration_seconds_count", stage="request_parsing", endpoint="/sync") == 1
    assert value(text, "backend_ttfb_seconds_count", provider="p", model="m", endpoint="/dropped") == 1
    sender.close()


def test_the_sender_waits_out_a_server_that_is_down(make_perfgate):
    server = make_perfgate()  # not started yet: nothing listens on its port
    sender = Sender(server.base, flush_interval=0.05, max_backoff=0.3)
    for n in range(30):
        tracker = PerformanceTracker("/outage", sender=sender)
        with tracker.backend_request(provider="p", model=f"m{n % 3}"):
            pass
        tracker.record_percentages()
    time.sleep(1.0)
    assert sender.stats()["retries"] >= 1 and sender.stats()["sent"] == 0
    server.start()
    assert sender.flush(20)
    assert sender.stats()["sent"] == 30 and sender.stats()["dropped"] == 0
    text = server.metrics_text()
    assert sum(value(text, "backend_ttfb_seconds_count", provider="p", model=f"m{n}", endpoint="/outage") for n in range(3)) == 30
    sender.close()


def test_a_full_queue_drops_and_counts_instead_of_blocking(make_perfgate):
    server = make_perfgate()  # down, so nothing drains the queue
    sender = Sender(server.base, max_queue=10, flush_interval=60, max_backoff=60, exit_timeout=0.1)
    started = time.monotonic()
    accepted = [sender.submit({"endpoint": "/x", "stages": {"backend_fetch": 1}}) for _ in range(100)]
    assert time.monotonic() - started < 5, "submit blocked"
    assert sum(accepted) <= 11 and sender.stats()["dropped"] >= 89
    sender.close()


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers the first POST with 503 and the next with 200, recording each Idempotency-Key."""
    keys = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        FlakyHandler.keys.append(self.headers["Idempotency-Key"])
        status = 503 if len(FlakyHandler.keys) == 1 else 200
        body = json.dumps({"accepted": 1, "rejected": 0, "errors": []}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_retried_batch_carries_the_same_idempotency_key():
    server = http.server.HTTPServer(("127.0.0.1", 0), FlakyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sender = Sender(f"http://127.0.0.1:{server.server_port}", flush_interval=0.05, max_backoff=0.2)
        sender.submit({"endpoint": "/x", "stages": {"backend_fetch": 1}})
        assert sender.flush(10)
        assert len(FlakyHandler.keys) == 2 and FlakyHandler.keys[0] == FlakyHandler.keys[1]
        assert sender.stats() == {"sent": 1, "dropped": 0, "rejected": 0, "retries": 1}
        sender.close()
    finally:
        server.shutdown()


def test_what_is_queued_is_sent_when_the_interpreter_exits(perfgate, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(
        "from perfgate import PerformanceTracker\n"
        "for n in range(25):\n"
        "    tracker = PerformanceTracker(endpoint='/exiting')\n"
        "    with tracker.backend_request(provider='p', model='m'):\n"
        "        pass\n"
        "    tracker.record_percentages()\n"
        "print('done')\n"  # exits at once: the sender's flush interval has not passed
    )
    import subprocess
    import sys
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30,
                            env={"PERFGATE_URL": perfgate.base, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and result.stdout == "done\n", result.stderr
    assert value(perfgate.metrics_text(), "backend_ttfb_seconds_count", provider="p", model="m", endpoint="/exiting") == 25


def test_a_url_that_cannot_work_is_given_up_not_retried_forever():
    sender = Sender("notaurl://x", flush_interval=0.05)
    sender.submit({"endpoint": "/x", "stages": {"backend_fetch": 1}})
    assert sender.flush(5)
    assert sender.stats()["rejected"] == 1 and sender.stats()["retries"] == 0
    sender.close()
