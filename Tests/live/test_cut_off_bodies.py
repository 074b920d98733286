"""A body that stops arriving is never applied in part: whether the client closes its side, the
connection drops, or its deadline passes, half of a batch counts nothing, and its
Idempotency-Key stays free for the whole batch."""
import json
import socket
import time

import pytest

from exposition import value

LINES = [json.dumps({"endpoint": "/cut", "provider": "p", "model": "m", "stages": {"backend_fetch": 0.1 + i / 10_000}}) for i in range(3000)]
BODY = ("\n".join(LINES) + "\n").encode()  # about 180 KB: the router's path, not the event loop's


def counted(server):
    return value(server.metrics_text(), "backend_ttfb_seconds_count", provider="p", model="m", endpoint="/cut") or 0


def head(length, extra=""):
    return (f"POST /v1/events HTTP/1.1\r\nHost: perfgate\r\nContent-Type: application/x-ndjson\r\nContent-Length: {length}\r\n{extra}\r\n").encode()


def half(body):
    # Cut at a line boundary: what arrived is itself valid NDJSON.
    cut = body.index(b"\n", len(body) // 2) + 1
    return body[:cut]


@pytest.mark.parametrize("how", ["shut_wr", "close", "deadline"])
def test_half_a_batch_counts_nothing(make_perfgate, how):
    server = make_perfgate(["--request-timeout", "2s"]).start()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(head(len(BODY)) + half(BODY))
    if how == "shut_wr":
        sock.shutdown(socket.SHUT_WR)
    elif how == "close":
        time.sleep(0.3)
        sock.close()
    if how != "close":
        sock.settimeout(5)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
        sock.close()
    time.sleep(0.5)
    assert counted(server) == 0
    assert server.post_events(BODY, "application/x-ndjson").json()["accepted"] == 3000
    assert counted(server) == 3000


def test_a_cut_off_keyed_batch_leaves_its_key_for_the_whole_batch(make_perfgate):
    server = make_perfgate().start()
    body = BODY[: BODY.index(b"\n", 700) + 1]  # a few events: small, keyed, the router's path
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(head(len(body), "Idempotency-Key: cut-1\r\n") + half(body))
    time.sleep(0.3)
    sock.close()
    time.sleep(0.5)
    assert counted(server) == 0
    whole = server.post_events(body, "application/x-ndjson", {"Idempotency-Key": "cut-1"})
    assert whole.status == 200, whole.text
    assert counted(server) == body.count(b"\n")
