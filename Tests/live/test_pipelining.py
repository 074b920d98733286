"""HTTP/1.1 pipelining (RFC 9112, 9.3): answers leave in the order their requests came, whichever
path answers them. Plain event POSTs are answered on the event loop, the rest by the router; a
client sending both kinds back to back on one connection must get every answer, in order."""
import json
import random
import socket
import time

from exposition import value



def count(text, model):
    return value(text, "backend_ttfb_seconds_count", provider="pipe", model=model, endpoint="/p")


def event(model, seconds):
    return json.dumps({"endpoint": "/p", "provider": "pipe", "model": model, "stages": {"backend_fetch": seconds}})


def request(method, path, body=b"", headers=()):
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: perfgate", *headers]
    if method in ("POST", "PUT") and not any(h.lower().startswith("transfer-encoding") for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Reader:
    """Reads HTTP/1.1 responses, one after another, from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the connection closed")
        self.buffer += chunk

    def response(self):
        while b"\r\n\r\n" not in self.buffer:
            self.fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, field = line.partition(":")
            headers[name.strip().lower()] = field.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self.fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.buffer == b"" and self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


# Each kind: the request, and what its answer must show. Plain POSTs go the event loop's way;
# the others are the router's (other routes, keys, chunked bodies) or start on the event loop and
# are handed to the router (a body that does not decode).
def plain(n):
    return request("POST", "/v1/events", event("a", 0.001 * (n + 1)), ["Content-Type: application/json"]), 200, "a"


def ndjson(n):
    body = "\n".join(event("a", 0.002 * (n + 1)) for _ in range(2))
    return request("POST", "/v1/events", body, ["Content-Type: application/x-ndjson"]), 200, "a"


def health(n):
    return request("GET", "/healthz"), 200, None


def malformed(n):
    return request("POST", "/v1/events", "{", ["Content-Type: application/json"]), 400, None


def rejected(n):
    return request("POST", "/v1/events", event("a", -1), ["Content-Type: application/json"]), 422, None


def keyed(n):
    return request("POST", "/v1/events", event("k", 0.5), ["Content-Type: application/json", f"Idempotency-Key: pipe-{n}-{random.random()}"]), 200, "k"


def chunked(n):
    body = event("c", 0.25).encode()
    framed = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    return request("POST", "/v1/events", framed, ["Content-Type: application/json", "Transfer-Encoding: chunked"]), 200, "c"


def wrong_method(n):
    return request("PUT", "/v1/events", event("a", 1)), 405, None


KINDS = [plain, plain, plain, ndjson, health, malformed, rejected, keyed, chunked, wrong_method]


def test_pipelined_requests_of_every_kind_are_answered_in_order(perfgate):
    rng = random.Random(20261202)
    expected_counts = {"a": 0, "k": 0, "c": 0}
    for round_ in range(5):
        kinds = [rng.choice(KINDS) for _ in range(40)]
        with socket.create_connection(("127.0.0.1", perfgate.port), timeout=10) as sock:
            wire = [(kind.__name__, *kind(n)) for n, kind in enumerate(kinds)]
            if round_ % 2:
                # One write per request: they arrive while earlier ones are being answered.
                for _, data, _, _ in wire:
                    sock.sendall(data)
            else:
                # All in one write: the server reads several requests at once.
                sock.sendall(b"".join(data for _, data, _, _ in wire))
            reader = Reader(sock)
            for index, (name, _, status, counts) in enumerate(wire):
                got, headers, body = reader.response()
                assert got == status, f"answer {index} ({name}) was {got} {body!r}; the order is {[w[0] for w in wire]}"
                if got == 200 and name != "health":
                    answer = json.loads(body)
                    assert answer["accepted"] == (2 if name == "ndjson" else 1), f"answer {index} ({name}): {answer}"
                    expected_counts[counts] += answer["accepted"]
                assert "date" in headers and headers.get("server", "").startswith("perfgate/"), f"answer {index} ({name}): {headers}"
    text = perfgate.metrics_text()
    for model, expected in expected_counts.items():
        assert count(text, model) == (expected or None), model


def test_a_body_arriving_in_pieces_is_read_whole(perfgate):
    head, body = request("POST", "/v1/events", event("slow", 0.75), ["Content-Type: application/json"]).split(b"\r\n\r\n", 1)
    with socket.create_connection(("127.0.0.1", perfgate.port), timeout=10) as sock:
        sock.sendall(head + b"\r\n\r\n")
        for start in range(0, len(body), 7):
            sock.sendall(body[start:start + 7])
            time.sleep(0.01)
        status, _, answer = Reader(sock).response()
    assert status == 200 and json.loads(answer)["accepted"] == 1
    assert count(perfgate.metrics_text(), "slow") == 1


def test_connection_close_is_honoured_after_the_answer(perfgate):
    with socket.create_connection(("127.0.0.1", perfgate.port), timeout=10) as sock:
        sock.sendall(request("POST", "/v1/events", event("bye", 0.5), ["Content-Type: application/json", "Connection: close"]))
        reader = Reader(sock)
        status, _, _ = reader.response()
        assert status == 200
        assert reader.closed()
    with socket.create_connection(("127.0.0.1", perfgate.port), timeout=10) as sock:
        # Keep-alive, in any case, keeps the connection for the next request.
        sock.sendall(request("POST", "/v1/events", event("bye", 0.5), ["Content-Type: application/json", "Connection: Keep-Alive"]) + request("GET", "/healthz"))
        reader = Reader(sock)
        assert reader.response()[0] == 200
        assert reader.response()[0] == 200
    assert count(perfgate.metrics_text(), "bye") == 2


def test_requests_sent_before_the_client_half_closes_are_all_answered(perfgate):
    # A client may send its requests and shut its side of the connection at once (SHUT_WR): the
    # end of its input reaches the server while the first request still commits, and must wait
    # behind the answers owed, on either path.
    for kinds in ([plain], [plain, plain, health, plain], [health, plain]):
        with socket.create_connection(("127.0.0.1", perfgate.port), timeout=10) as sock:
            wire = [(kind.__name__, *kind(n)) for n, kind in enumerate(kinds)]
            sock.sendall(b"".join(data for _, data, _, _ in wire))
            sock.shutdown(socket.SHUT_WR)
            reader = Reader(sock)
            for index, (name, _, status, _) in enumerate(wire):
                got, _, body = reader.response()
                assert got == status, f"answer {index} ({name}) was {got} {body!r}"
            assert reader.closed()
