"""A fake OpenAI-compatible backend on a loopback port, for driving the real `openai` SDK.

`POST /v1/chat/completions`:
- with `"stream": true` it waits `first_chunk_delay` BEFORE sending the response head, so the
  head and the first SSE chunk leave together (an HTTP client span that ends at the response head
  then marks the first chunk), sends the rest of the chunks evenly over `stream_duration`, then
  `data: [DONE]`;
- otherwise it waits `delay` and answers one `chat.completion`.

Each request's delays come from a seeded random schedule (not round numbers), or from the
request headers `x-fake-first-chunk-delay`, `x-fake-stream-duration` and `x-fake-delay`
(seconds), which win. The response's model is the request's with "-2024-07-18" appended. Every
request answered is recorded in `served`.
"""

import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Schedule:
    """Per-request delays from one seeded generator, drawn under a lock in arrival order."""

    def __init__(self, seed, first_chunk=(0.05, 0.4), stream=(0.2, 3.0), delay=(0.05, 0.6), chunks=(4, 24)):
        self.rng = random.Random(seed)
        self.first_chunk = first_chunk
        self.stream = stream
        self.delay = delay
        self.chunks = chunks
        self.lock = threading.Lock()

    def draw(self):
        with self.lock:
            return {
                "first_chunk_delay": self.rng.uniform(*self.first_chunk),
                "stream_duration": self.rng.uniform(*self.stream),
                "delay": self.rng.uniform(*self.delay),
                "chunks": self.rng.randint(*self.chunks),
            }


class _Handler(BaseHTTPRequestHandler):
    # Each write goes out at once, as a real backend's: with Nagle's algorithm a body written after
    # its head waits for the client's delayed acknowledgement (40 ms), which no backend charges.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        plan = self.server.schedule.draw()
        for header, key in (("x-fake-first-chunk-delay", "first_chunk_delay"),
                            ("x-fake-stream-duration", "stream_duration"), ("x-fake-delay", "delay")):
            if self.headers.get(header):
                plan[key] = float(self.headers[header])
        # Answered as a dated snapshot of the model asked for, as OpenAI does: the request's model
        # and the response's differ.
        model = body.get("model", "unknown") + "-2024-07-18"
        served = {"model": model, "stream": bool(body.get("stream")), **plan}
        if body.get("stream"):
            self._stream(model, plan, body)
        else:
            time.sleep(plan["delay"])
            self._json(200, self._completion(model))
        with self.server.lock:
            self.server.served.append(served)

    def _completion(self, model):
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fake backend."},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
        }

    def _json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, text):
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self, model, plan, body):
        n = plan["chunks"]
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def event(delta, finish=None):
            payload = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                       "model": model, "system_fingerprint": "fp_fake",
                       "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            return "data: " + json.dumps(payload) + "\n\n"

        time.sleep(plan["first_chunk_delay"])
        # The head and the first chunk in one write: they reach the client together.
        head = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                "Transfer-Encoding: chunked\r\n\r\n")
        first = event({"role": "assistant", "content": "w0"}).encode()
        self.wfile.write(head.encode() + b"%x\r\n%s\r\n" % (len(first), first))
        self.wfile.flush()
        started = time.monotonic()
        for i in range(1, n):
            # Chunk i leaves at i/(n-1) of the stream duration; the last one at its end.
            time.sleep(max(0.0, started + plan["stream_duration"] * i / (n - 1) - time.monotonic()))
            self._chunk(event({"content": f" w{i}"}, "stop" if i == n - 1 else None))
        if include_usage:
            usage = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model, "choices": [],
                     "usage": {"prompt_tokens": 9, "completion_tokens": n, "total_tokens": 9 + n}}
            self._chunk("data: " + json.dumps(usage) + "\n\n")
        self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client closing its kept-alive connection (the app stopping) is not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeOpenAI:
    """The fake backend in a thread of this process; `base_url` is what the SDK is given."""

    def __init__(self, seed=1, **ranges):
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.schedule = Schedule(seed, **ranges)
        self.httpd.served = []
        self.httpd.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def served(self):
        with self.httpd.lock:
            return list(self.httpd.served)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
