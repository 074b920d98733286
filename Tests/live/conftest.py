"""Fixtures that run the real perfgate binary on a loopback port with its own SQLite file."""

import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("PERFGATE_BIN", ROOT / ".build" / "debug" / "perfgate")).resolve()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode()


class Perfgate:
    """One perfgate process; start() and stop() may be called repeatedly on the same store."""

    def __init__(self, workdir, args=(), env=None, ssl_context=None):
        self.workdir = Path(workdir)
        # With an SSL context, requests go over HTTPS (perfgate started with --tls-*).
        self.ssl_context = ssl_context
        self.port = free_port()
        self.args = list(args)
        self.env = env or {}
        self.process = None
        self.log_path = self.workdir / "perfgate.log"

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=20):
        env = {**os.environ, "PERFGATE_PORT": str(self.port), **self.env}
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(BINARY), "serve", *self.args], cwd=self.workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"perfgate exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if self.get("/healthz").status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"perfgate did not answer within {timeout}s:\n{self.log_path.read_text()}")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode if self.process else None
        self.process = None
        if getattr(self, "log", None):
            self.log.close()
        return code

    def request(self, method, path, body=None, headers=None, timeout=10):
        # http.client sends exactly the headers given (urllib would add a form Content-Type).
        if self.ssl_context:
            connection = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.ssl_context)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            connection.close()

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post_events(self, body, content_type="application/json", headers=None):
        if isinstance(body, (list, dict)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        return self.request("POST", "/v1/events", body, all_headers)

    def metrics_text(self):
        response = self.get("/metrics")
        assert response.status == 200
        return response.text


@pytest.fixture
def perfgate(tmp_path):
    server = Perfgate(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def make_perfgate(tmp_path):
    """Builds unstarted perfgate processes sharing the test's folder; all are stopped at the end."""
    servers = []

    def make(args=(), env=None, ssl_context=None):
        server = Perfgate(tmp_path, args, env, ssl_context)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(signal.SIGKILL)


def gzipped(text):
    return gzip.compress(text.encode() if isinstance(text, str) else text)
