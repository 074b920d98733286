"""Thousands of hostile connections over real sockets, driven by one `selectors` loop.

A `Swarm` opens non-blocking sockets to one port, each playing one `Attack`: it sends its opening
bytes as soon as it connects, a few of each kind then trickle more bytes every second or two, and
every socket notes when the server answered it and when the server closed it (a read of nothing,
or a reset). Nothing here blocks for long: every loop is bounded in time, and `close()` closes
whatever is left.

Also here: what the test process needs from the kernel (its open-file limit), the server's memory
(/proc/<pid>/status), and fresh clients timed from connect to the last byte of their answer.
"""

import contextlib
import errno
import heapq
import http.client
import random
import resource
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

CONNECTING, OPEN, CLOSED, FAILED = "connecting", "open", "closed", "failed"


@dataclass(frozen=True)
class Attack:
    """What one hostile socket does: `opening` as soon as it connects; if it is one of the
    tricklers, `step` more bytes of `trickle` (cycled) every `interval` seconds (a range), for
    ever; it reads whatever the server sends and never sends anything else."""
    name: str
    opening: bytes = b""
    trickle: bytes = b""
    step: int = 1
    interval: tuple = (1.0, 2.0)
    # The server owes this socket an answer (an HTTP response, or the server's TLS flight).
    answered: bool = False
    # An HTTP answer must start with this (None: any bytes, e.g. a TLS flight).
    answer_prefix: bytes = None
    # The answer completed what the client owed, so the server's deadline starts again from it
    # (an idle keep-alive connection); otherwise the deadline runs from the connection's opening.
    answer_restarts_deadline: bool = False


class Conn:
    __slots__ = ("sock", "attack", "trickles", "state", "opened_at", "connected_at", "answered_at",
                 "closed_at", "how", "head", "outbox", "position", "error")

    def __init__(self, sock, attack, trickles, now):
        self.sock = sock
        self.attack = attack
        self.trickles = trickles
        self.state = CONNECTING
        self.opened_at = now
        self.connected_at = None
        self.answered_at = None
        self.closed_at = None
        self.how = None
        self.head = b""
        self.outbox = b""
        self.position = 0
        self.error = None

    @property
    def reference(self):
        """When the server's deadline for this connection started: when it connected, or, when
        the answer completes what the client owed, when the answer was first read here (the
        server wrote it a moment earlier). Bytes a server sends as it hangs up (a 408, a TLS
        alert) never move it."""
        if self.attack.answer_restarts_deadline and self.answered_at is not None:
            return self.answered_at
        return self.connected_at

    @property
    def lifetime(self):
        """Seconds from `reference` to the server's close, or None while it is held."""
        if self.closed_at is None or self.reference is None:
            return None
        return self.closed_at - self.reference


class Swarm:
    """Hostile sockets to 127.0.0.1:`port`, one selectors loop for all of them."""

    def __init__(self, port, seed=1):
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.conns = []
        self.timers = []  # (when, sequence, conn) for the tricklers
        self.sequence = 0
        self.random = random.Random(seed)
        self.connecting = 0  # sockets whose connect is in flight
        self.listen_overflows = 0  # counted by the kernel (machine-wide) while this swarm opened

    # -- opening --------------------------------------------------------------------------

    def open(self, plan, tricklers=None, window=200, stall=2.0, limit=30.0):
        """Opens one socket per entry of `plan` (a list of Attack, in opening order) and returns
        the seconds it took. `tricklers` maps an attack name to how many of its sockets trickle
        (default: all of them). At most `window` connects are in flight at once, and the window
        halves (down to 8) whenever the kernel counts a listen-queue overflow, so that connections
        are not left half-open in the kernel for seconds (a client whose final ACK was dropped
        thinks it is connected long before the server can accept it, which would blur every
        deadline measured from here). When no connect completes for `stall` seconds (the server
        stopped accepting) or after `limit` seconds, the rest are opened at once without waiting,
        so the attack is always as large as asked."""
        started = time.monotonic()
        tricklers = dict(tricklers or {})
        wait = True
        overflows_before = overflows = listen_overflows()
        for number, attack in enumerate(plan):
            if wait and number % 25 == 0 and overflows is not None:
                now_overflows = listen_overflows()
                if now_overflows > overflows:
                    window = max(8, window // 2)
                    self.pump(0.05)
                overflows = now_overflows
            trickles = bool(attack.trickle) and tricklers.get(attack.name, 1 << 30) > 0
            if trickles and attack.name in tricklers:
                tricklers[attack.name] -= 1
            if wait:
                last_progress = time.monotonic()
                while self.connecting >= window:
                    before = self.connecting
                    self.pump(0.05)
                    now = time.monotonic()
                    if self.connecting < before:
                        last_progress = now
                    elif now - last_progress > stall or now - started > limit:
                        wait = False
                        break
            self._connect(attack, trickles)
        # Let the last window connect (bounded the same way).
        last_progress, before = time.monotonic(), self.connecting
        while self.connecting and wait:
            self.pump(0.05)
            now = time.monotonic()
            if self.connecting < before:
                last_progress, before = now, self.connecting
            elif now - last_progress > stall or now - started > limit:
                break
        if overflows_before is not None:
            self.listen_overflows += listen_overflows() - overflows_before
        return time.monotonic() - started

    def _connect(self, attack, trickles):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        conn = Conn(sock, attack, trickles, time.monotonic())
        self.conns.append(conn)
        code = sock.connect_ex(("127.0.0.1", self.port))
        if code == 0:
            self._connected(conn)
        elif code in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
            self.selector.register(sock, selectors.EVENT_WRITE, conn)
            self.connecting += 1
        else:
            conn.state, conn.error = FAILED, errno.errorcode.get(code, str(code))
            sock.close()

    def _connected(self, conn):
        conn.state = OPEN
        conn.connected_at = time.monotonic()
        conn.outbox = conn.attack.opening
        self._flush(conn, register=True)
        if conn.state == OPEN and conn.trickles:
            self._schedule(conn)

    def _schedule(self, conn):
        low, high = conn.attack.interval
        self.sequence += 1
        heapq.heappush(self.timers, (time.monotonic() + self.random.uniform(low, high), self.sequence, conn))

    def _events(self, conn):
        return selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbox else 0)

    def _flush(self, conn, register=False):
        if conn.outbox:
            try:
                sent = conn.sock.send(conn.outbox)
                conn.outbox = conn.outbox[sent:]
            except (BlockingIOError, InterruptedError):
                pass
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as error:
                self._closed(conn, type(error).__name__)
                return
        if register:
            self.selector.register(conn.sock, self._events(conn), conn)
        else:
            self.selector.modify(conn.sock, self._events(conn), conn)

    def _closed(self, conn, how):
        conn.state = CLOSED
        conn.closed_at = time.monotonic()
        conn.how = how
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        conn.sock.close()

    # -- the loop -------------------------------------------------------------------------

    def pump(self, seconds):
        """Runs the loop for `seconds`: completes connects, sends what is owed, trickles, reads."""
        until = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, conn = heapq.heappop(self.timers)
                if conn.state != OPEN:
                    continue
                pattern, step = conn.attack.trickle, conn.attack.step
                chunk = bytes(pattern[(conn.position + i) % len(pattern)] for i in range(step))
                conn.position += step
                conn.outbox += chunk
                self._flush(conn)
                if conn.state == OPEN:
                    self._schedule(conn)
            if now >= until:
                return
            timeout = until - now
            if self.timers:
                timeout = min(timeout, max(0.0, self.timers[0][0] - now))
            if not self.selector.get_map():
                time.sleep(timeout)
                continue
            for key, mask in self.selector.select(timeout):
                conn = key.data
                if conn.state == CONNECTING:
                    code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    self.selector.unregister(conn.sock)
                    self.connecting -= 1
                    if code == 0:
                        self._connected(conn)
                    else:
                        conn.state, conn.error = FAILED, errno.errorcode.get(code, str(code))
                        conn.sock.close()
                    continue
                if conn.state != OPEN:
                    continue
                if mask & selectors.EVENT_READ:
                    self._read(conn)
                if conn.state == OPEN and mask & selectors.EVENT_WRITE:
                    self._flush(conn)

    def _read(self, conn):
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as error:
            self._closed(conn, type(error).__name__)
            return
        if not data:
            self._closed(conn, "eof")
            return
        if len(conn.head) < 64:
            conn.head += data[:64 - len(conn.head)]
        if conn.answered_at is None:
            conn.answered_at = time.monotonic()

    def pump_until(self, done, limit, step=0.1):
        """Pumps until `done()` is true or `limit` seconds have passed; returns whether it was."""
        deadline = time.monotonic() + limit
        while not done():
            if time.monotonic() >= deadline:
                return False
            self.pump(min(step, max(0.0, deadline - time.monotonic())))
        return True

    def wait_answers(self, limit):
        """Pumps until every open socket owed an answer has one (or `limit` seconds)."""
        return self.pump_until(
            lambda: not any(c.state == OPEN and c.attack.answered and c.answered_at is None for c in self.conns), limit)

    # -- figures --------------------------------------------------------------------------

    def count(self, state=None, name=None):
        return sum(1 for c in self.conns if (state is None or c.state == state) and (name is None or c.attack.name == name))

    def held(self):
        """Sockets connected and not closed by the server."""
        return [c for c in self.conns if c.state == OPEN]

    def summary(self):
        """Per attack: how many sockets are in each state, how many got bytes from the server, and
        the longest a closed one lived past its `reference`."""
        out = {}
        for c in self.conns:
            entry = out.setdefault(c.attack.name, {"sockets": 0, CONNECTING: 0, OPEN: 0, CLOSED: 0, FAILED: 0,
                                                   "got bytes": 0, "longest life": 0.0})
            entry["sockets"] += 1
            entry[c.state] = entry.get(c.state, 0) + 1
            entry["got bytes"] += c.answered_at is not None
            if c.lifetime is not None:
                entry["longest life"] = round(max(entry["longest life"], c.lifetime), 2)
        return out

    def close(self):
        for c in self.conns:
            if c.state in (CONNECTING, OPEN):
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(c.sock)
                c.sock.close()
                c.state = "closed by the test"
        self.selector.close()


def listen_overflows():
    """The kernel's TcpExt ListenOverflows counter (connections dropped because a listen queue
    was full, machine-wide), or None where /proc/net/netstat does not say."""
    try:
        with open("/proc/net/netstat") as netstat:
            lines = netstat.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines, lines[1:]):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table["ListenOverflows"]) if "ListenOverflows" in table else None
    return None


def closed_by_server(sock, limit):
    """Seconds until the server closes a blocking `sock` (a read returns nothing or it resets),
    or None if it is still open after `limit` seconds. Bytes the server sends are skipped."""
    started = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - started < limit:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except socket.timeout:
            continue
        except (ConnectionResetError, ConnectionAbortedError):
            return time.monotonic() - started
    return None


def interleave(counts, attacks):
    """An opening plan: `counts[name]` sockets of each attack, round-robin."""
    remaining = dict(counts)
    plan = []
    while any(remaining.values()):
        for name in counts:
            if remaining[name]:
                plan.append(attacks[name])
                remaining[name] -= 1
    return plan


# -- the test process and the server ---------------------------------------------------------

@contextlib.contextmanager
def child_soft_limit(limit):
    """Lowers this process's soft RLIMIT_NOFILE to `limit` for the block, so a process started in
    it inherits that soft limit (the hard one is untouched; the old soft one comes back after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(limit, soft) if soft != resource.RLIM_INFINITY else limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def proc_status(pid, field_name):
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM) in MB, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def open_files_limits(pid):
    """(soft, hard) `Max open files` of a process, from /proc/<pid>/limits."""
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return (soft if soft == "unlimited" else int(soft)), (hard if hard == "unlimited" else int(hard))
    raise AssertionError(f"no 'Max open files' in /proc/{pid}/limits")


# -- fresh clients -------------------------------------------------------------------------

def timed_request(port, method, path, body=None, headers=None, ssl_context=None, timeout=3.0):
    """(status or an error's name, seconds from connect to the answer's last byte)."""
    started = time.monotonic()
    if ssl_context:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ssl_context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__, time.monotonic() - started
    finally:
        connection.close()


@dataclass
class Probes:
    """Fresh clients during an attack: each round a GET /healthz and a one-event POST, each on a
    new connection; the server's RSS read after each round."""
    results: list = field(default_factory=list)  # (what, status, seconds)
    rss: list = field(default_factory=list)

    @property
    def worst(self):
        return max((seconds for _, _, seconds in self.results), default=None)

    def failures(self, within):
        return [r for r in self.results if r[1] != 200 or r[2] > within]

    def describe(self):
        return ", ".join(f"{what} {status} in {seconds:.3f}s" for what, status, seconds in self.results)


def probe_while_pumping(swarm, port, pid, post, rounds=5, spacing=0.3, timeout=3.0, ssl_context=None):
    """Runs `rounds` of fresh clients in a thread while the swarm keeps trickling and reading in
    this one; stops after the first client that fails or is slower than `timeout`. `post` is
    (body, headers) of the one-event POST."""
    probes = Probes()

    def run():
        for _ in range(rounds):
            for what, method, path, body, headers in (("GET /healthz", "GET", "/healthz", None, None),
                                                      ("POST /v1/events", "POST", "/v1/events", *post)):
                status, seconds = timed_request(port, method, path, body, headers, ssl_context, timeout)
                probes.results.append((what, status, seconds))
                if status != 200:
                    return
            probes.rss.append(proc_status(pid, "VmRSS"))
            time.sleep(spacing)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + rounds * (2 * timeout + spacing + 1)
    while thread.is_alive() and time.monotonic() < deadline:
        swarm.pump(0.1)
    thread.join(timeout=max(0.0, deadline - time.monotonic()) + 2 * timeout)
    return probes


def tls_client_hello():
    """The bytes of a real TLS ClientHello (Python's TLS client, to localhost), as sent first on
    the wire: a handshake stopped at any point of it is a half-open TLS connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:16]
    return hello
