"""Slow clients cannot hold a connection: each request, head and body, must arrive within
--request-timeout of the connection opening or of the previous response; at the connection cap
the oldest connection waiting on its client makes room for a new one."""
import socket
import time

from exposition import value
from hostile_sockets import closed_by_server as wait_closed


def test_a_client_trickling_its_headers_is_cut_off(make_perfgate):
    server = make_perfgate(["--request-timeout", "1s"]).start()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: perfgate\r\n")
        closed = False
        # One header byte every 0.2 s: never idle, never done.
        for byte in b"X-Slow: " + b"a" * 40:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
            if time.monotonic() - started > 4:
                break
        assert closed or wait_closed(sock, 2) is not None, "the slow client still held its connection"
        assert time.monotonic() - started < 4
    assert server.get("/healthz").status == 200


def test_a_body_that_never_finishes_is_cut_off(make_perfgate):
    server = make_perfgate(["--request-timeout", "1s"]).start()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: perfgate\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"endpoint\"")
        elapsed = wait_closed(sock, 4)
        assert elapsed is not None and elapsed < 3
    assert server.get("/healthz").status == 200


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout_and_busy_ones_are_not(make_perfgate):
    server = make_perfgate(["--request-timeout", "1s"]).start()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        # Requests more often than the timeout keep the connection.
        for _ in range(4):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: perfgate\r\n\r\n")
            sock.settimeout(2)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            time.sleep(0.5)
        elapsed = wait_closed(sock, 4)
        assert elapsed is not None and elapsed < 3


def test_at_max_connections_a_new_client_is_served_and_the_oldest_waiting_connection_closed(make_perfgate):
    server = make_perfgate(["--max-connections", "2", "--request-timeout", "30s"]).start()
    # The oldest has completed a request (an idle keep-alive), the next has sent nothing: the one
    # that never completed a request goes first.
    kept = socket.create_connection(("127.0.0.1", server.port))
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: perfgate\r\n\r\n")
    kept.settimeout(2)
    assert kept.recv(65536).startswith(b"HTTP/1.1 200")
    silent = socket.create_connection(("127.0.0.1", server.port))
    # Past their first second: a connection younger than that is spared while older ones wait.
    time.sleep(1.2)
    newcomer = socket.create_connection(("127.0.0.1", server.port))
    newcomer.sendall(b"GET /healthz HTTP/1.1\r\nHost: perfgate\r\nConnection: close\r\n\r\n")
    newcomer.settimeout(1.0)
    assert newcomer.recv(65536).startswith(b"HTTP/1.1 200"), "the new client was not served at the cap"
    assert wait_closed(silent, 2) is not None, "the silent connection was not closed to make room"
    # The idle keep-alive is still served.
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: perfgate\r\n\r\n")
    assert kept.recv(65536).startswith(b"HTTP/1.1 200")
    for sock in (kept, silent, newcomer):
        sock.close()
    page = server.metrics_text()
    assert value(page, "perfgate_connections_shed_total") >= 1
    assert value(page, "perfgate_connection_limit_reached_total") >= 1
