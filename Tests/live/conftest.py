"""Fixtures that run the real perfgate binary on a loopback port with its own SQLite file."""

import gzip
import http.client
import json
import os
import signal
from pathlib import Path

import pytest

from server_process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("PERFGATE_BIN", ROOT / ".build" / "debug" / "perfgate")).resolve()


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


class Perfgate(ServerProcess):
    """One perfgate process; start() and stop() may be called repeatedly on the same store."""

    def __init__(self, workdir, args=(), env=None, ssl_context=None):
        self.workdir = Path(workdir)
        port = free_port()
        # With an SSL context, requests go over HTTPS (perfgate started with --tls-*).
        super().__init__(
            [BINARY, "serve", *args], port, "/healthz", self.workdir / "perfgate.log", cwd=self.workdir,
            env={**os.environ, "PERFGATE_PORT": str(port), **(env or {})}, ssl_context=ssl_context,
        )

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM, timeout=20):
        return super().stop(sig, timeout)

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

    def post_events(self, body, content_type="application/json", headers=None, timeout=10):
        if isinstance(body, (list, dict)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        return self.request("POST", "/v1/events", body, all_headers, timeout=timeout)

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
